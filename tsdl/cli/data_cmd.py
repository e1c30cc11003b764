"""`tsdl check-data`: run the pre-training checklist and print the table and split report."""

from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath

from tsdl.cli._common import add_config_args, config_from_args
from tsdl.errors import ConfigError, TsdlError

__all__ = ["register"]

_EPILOG = """\
examples:
  tsdl check-data -c examples/etth1.yaml          the checklist for a config's data section
  tsdl check-data data.csv                        a file with default settings
  tsdl check-data ETTh1                           a benchmark dataset by name (fetched once)
  tsdl check-data s3://bucket/data.csv            an object (endpoint/keys from AWS_* env vars)
  tsdl check-data data.csv --set data.missing=ffill --set data.input_chunk_length=96

exit codes: 0 all checks pass or warn, 1 a check failed, 2 unreadable input or config
"""

# Time-column names tried when FILE is given without a config and has no 'ds' column.
_TIME_NAMES = ("ds", "date", "datetime", "timestamp", "time")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check-data",
        help="run the pre-training data checklist",
        description="Read the data, run every check (NaN, duplicates, grid, gaps, short series, "
        "leakage, split) and print one line per check plus the split report.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", nargs="?", metavar="FILE",
        help="CSV/Parquet file (overrides data.path), or a dataset name such as ETTh1",
    )
    add_config_args(parser)
    parser.set_defaults(handler=_check_data)


def _check_data(args: argparse.Namespace) -> int:
    from tsdl.data import run_checklist

    if args.file is None and args.config is None:
        raise ConfigError("check-data needs -c CONFIG or a FILE", hint="e.g. tsdl check-data data.csv")
    # FILE and what is guessed from it go in as (key, value): a file named `#x.csv`, `null` or
    # `2024` is that file, not a YAML comment, null or number.
    overrides: list = list(args.overrides)
    if args.file is not None and _is_dataset_name(args.file):
        overrides = [("data.dataset", args.file), *_dataset_defaults(args.file, args), *overrides]
    elif args.file is not None:
        overrides = [("data.path", args.file), *_file_defaults(args.file, args), *overrides]
    args.overrides = overrides
    report = run_checklist(config_from_args(args))
    print(report.render())
    return 0 if report.ok else 1


def _file_defaults(location: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Without a config, guess the time column and treat a wide file's columns as series.

    ``location`` may be an object URI; an unreadable one is left to the checklist to report.
    """
    from tsdl.data.sniff import sniff_delimiter
    from tsdl.storage import filesystem

    if args.config is not None or PurePosixPath(location).suffix.lower() != ".csv":
        return []
    try:
        fs, path = filesystem(location)
        with fs.open_input_stream(path) as handle:
            first = handle.read(1 << 16).decode("utf-8", errors="replace").splitlines()
    except (OSError, TsdlError):
        return []
    line = (first[0] if first else "").lstrip("\ufeff").strip()  # Excel's "CSV UTF-8" starts with a BOM
    header = [c.strip().strip('"') for c in line.split(sniff_delimiter(line))]
    guessed: list[tuple[str, str]] = []
    time_col = next((c for c in _TIME_NAMES if c in header), None)
    if time_col and time_col != "ds":
        guessed.append(("data.time_col", time_col))
    if "unique_id" not in header and "y" not in header and time_col:
        guessed.append(("data.series_cols", "all"))
    return guessed


def _is_dataset_name(name: str) -> bool:
    """A registered dataset name that is not also a file in the working directory."""
    from tsdl.data.datasets import DATASETS

    return name in DATASETS and not Path(name).exists()


def _dataset_defaults(name: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Without a config, read a benchmark the way it is laid out (wide, every channel a series)."""
    from tsdl.data.datasets import get_dataset

    if args.config is not None:
        return []
    return [("data.time_col", get_dataset(name).time_col), ("data.series_cols", "all")]
