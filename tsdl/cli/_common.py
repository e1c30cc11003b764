"""Arguments and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse

from tsdl.config import TsdlConfig, load_config
from tsdl.errors import ConfigError

__all__ = ["add_config_args", "add_name_args", "check_name_args", "config_from_args"]


def add_config_args(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """-c CONFIG plus repeatable --set key.path=value overrides."""
    parser.add_argument(
        "-c", "--config", required=required, metavar="FILE",
        help="YAML config (see `tsdl config init`; at most 1 MiB, no nested aliases)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.max_epochs=5 (repeatable); the value is "
        "read as YAML, but a text field (a name, namespace, column) keeps it as written: 0123 stays '0123'",
    )


def add_name_args(parser: argparse.ArgumentParser, noun: str, *, default: str, found: str) -> None:
    """--<noun>-name NAME plus --resume-if-exists: one command that starts a run (or study) or,
    when a RayJob retry runs it again, resumes it. train and tune must offer the same pair.

    Args:
        noun: ``run`` or ``study``; gives ``--run-name`` (``args.run_name``) and so on.
        default: the name used without the flag, for the help text.
        found: how an existing one is found or what resuming keeps, for the help text.
    """
    parser.add_argument(
        f"--{noun}-name",
        metavar="NAME",
        help=f"name of a new {noun} (default: {default}); an existing name is refused; letters, "
        "digits, _ . - (starting with a letter or digit), at most 128",
    )
    parser.add_argument(
        "--resume-if-exists",
        action="store_true",
        help=f"with --{noun}-name: resume that {noun} if it exists {found}, else start it",
    )


def check_name_args(args: argparse.Namespace, noun: str, *, example: str) -> None:
    """--resume-if-exists without a name has nothing to look for: refuse it before any work."""
    if args.resume_if_exists and not getattr(args, f"{noun}_name"):
        raise ConfigError(
            f"--resume-if-exists needs --{noun}-name NAME",
            hint=f"e.g. --{noun}-name {example} --resume-if-exists",
        )


def config_from_args(args: argparse.Namespace) -> TsdlConfig:
    return load_config(getattr(args, "config", None), overrides=getattr(args, "overrides", []))
