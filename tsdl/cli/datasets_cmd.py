"""`tsdl datasets list|fetch`: the benchmark datasets tsdl downloads by name."""

from __future__ import annotations

import argparse

__all__ = ["register"]

_EPILOG = """\
examples:
  tsdl datasets list                  names, sizes, licenses and which are cached
  tsdl datasets fetch ETTh1           download once (SHA-256 verified) and print the path

A config names a dataset with `data.dataset: ETTh1` (fetched on first use).
cache: $TSDL_DATA_HOME (default ~/.cache/tsdl/datasets); mirror: $TSDL_DATASETS_URL/<file>
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "datasets",
        help="list and fetch the standard benchmark datasets",
        description="Benchmark datasets by name: downloaded from their canonical source, "
        "checked against a pinned SHA-256 and cached.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="datasets_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="the datasets tsdl knows and which are cached")
    listing.set_defaults(handler=_list)
    fetch = commands.add_parser("fetch", help="download a dataset into the cache")
    fetch.add_argument("name", metavar="NAME", help="dataset name, e.g. ETTh1")
    fetch.add_argument("--force", action="store_true", help="download again even if cached")
    fetch.set_defaults(handler=_fetch)


def _list(args: argparse.Namespace) -> int:
    from tsdl.data.datasets import DATASETS, cache_dir, cached_path

    print(f"{'name':<7} {'freq':<6} {'rows':>7}  {'cached':<6}  description")
    for spec in DATASETS.values():
        cached = "yes" if cached_path(spec.name).exists() else "no"
        print(f"{spec.name:<7} {spec.freq:<6} {spec.rows:>7}  {cached:<6}  {spec.description}")
    print(f"cache: {cache_dir()}  (set TSDL_DATA_HOME to move it)")
    licenses = "; ".join(sorted({spec.license for spec in DATASETS.values()}))
    print(f"license: {licenses}; citation: `tsdl datasets fetch NAME` prints it")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from tsdl.api import fetch_dataset
    from tsdl.data.datasets import get_dataset

    spec = get_dataset(args.name)
    path = fetch_dataset(args.name, force=args.force)
    print(f"{spec.name}: {path} (sha256 {spec.sha256[:12]}... verified)")
    print(f"license: {spec.license}")
    print(f"cite: {spec.citation}")
    return 0
