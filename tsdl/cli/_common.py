"""Arguments and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse

from tsdl.config import TsdlConfig, load_config

__all__ = ["add_config_args", "config_from_args"]


def add_config_args(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """-c CONFIG plus repeatable --set key.path=value overrides."""
    parser.add_argument(
        "-c", "--config", required=required, metavar="FILE", help="YAML config (see `tsdl config init`)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.max_epochs=5 (repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> TsdlConfig:
    return load_config(getattr(args, "config", None), overrides=getattr(args, "overrides", []))
