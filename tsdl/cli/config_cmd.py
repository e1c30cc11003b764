"""`tsdl config init|show`: write the documented defaults, print a resolved config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tsdl.cli._common import add_config_args, config_from_args
from tsdl.config import commented_default_yaml, dump_config
from tsdl.errors import ConfigError, writing

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="write or inspect configuration files")
    inner = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    init = inner.add_parser("init", help="write a commented config with every default")
    init.add_argument("-o", "--output", metavar="FILE", help="file to write (default: stdout)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=_init)

    show = inner.add_parser("show", help="print the fully resolved config (defaults filled in)")
    add_config_args(show)
    show.set_defaults(handler=_show)


def _init(args: argparse.Namespace) -> int:
    text = commented_default_yaml()
    if not args.output:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    if path.exists() and not args.force:
        raise ConfigError(f"{path} already exists", hint="pass --force to overwrite it")
    with writing(path, "config"):
        path.write_text(text)
    print(f"wrote {path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    sys.stdout.write(dump_config(config_from_args(args)))
    return 0
