// modzip writes the Go module zip of a module's source directory, as the Go module proxy would
// serve it (golang.org/x/mod/zip: the same file selection and layout the go command hashes), and
// prints its h1: hash.
//
//	go run modzip.go MODULE VERSION DIR OUT.zip
//
// scripts/cluster/build.sh uses it when the proxy refuses a release's zip but a git mirror holds
// the release commit: the zip goes into a file:// GOPROXY in front of the real one, and `go
// install MODULE@VERSION` then checks it against the checksum database (sum.golang.org) like any
// download, so only the release's exact source is built.
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/zip"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: modzip MODULE VERSION DIR OUT.zip")
		os.Exit(2)
	}
	mod := module.Version{Path: os.Args[1], Version: os.Args[2]}
	out, err := os.Create(os.Args[4])
	if err == nil {
		err = zip.CreateFromDir(out, mod, os.Args[3])
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: module zip of %s: %v\n", os.Args[3], err)
		os.Exit(1)
	}
	hash, err := dirhash.HashZip(os.Args[4], dirhash.Hash1)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: hashing %s: %v\n", os.Args[4], err)
		os.Exit(1)
	}
	fmt.Println(hash)
}
