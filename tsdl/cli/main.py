"""Entry point of the `tsdl` command; each sub-command lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from tsdl import __version__
from tsdl.cli.failures import ending, failure_line, sigterm_interrupts
from tsdl.ray_connection import configure_output

__all__ = ["build_parser", "main"]

# Sub-command modules, in the order `tsdl --help` lists them. Each exposes `register(subparsers)`.
_COMMAND_MODULES = (
    "tsdl.cli.config_cmd",
    "tsdl.cli.data_cmd",
    "tsdl.cli.datasets_cmd",
    "tsdl.cli.train_cmd",
    "tsdl.cli.tune_cmd",
    "tsdl.cli.deploy_cmd",
    "tsdl.cli.doctor_cmd",
)

_DESCRIPTION = """\
Train and tune time-series deep-learning models on Ray, from a laptop to KubeRay.

typical flow:
  tsdl datasets fetch ETTh1               download a benchmark (or set data.dataset)
  tsdl config init -o config.yaml         write a commented default config
  tsdl check-data -c config.yaml          run the pre-training checklist
  tsdl train -c config.yaml               train with Ray Train, track in MLflow
  tsdl tune -c config.yaml --budget small ASHA + Optuna TPE study
  tsdl render -c config.yaml              the KubeRay RayJob for the same config

exit codes: 0 success; 1 a check or comparison failed (check-data, doctor, --reproduce);
  2 a user error (one line: what, where, and the fix); 3 an unexpected error (rerun with
  --debug for the traceback); 130 Ctrl-C; 143 SIGTERM
"""


_VERBOSE_HELP = "also show Ray, Tune, MLflow and Optuna logs (hidden by default)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsdl",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tsdl {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    _add_verbose(parser)
    return parser


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """`tsdl train --verbose` as well as `tsdl --verbose train` (nested commands too).

    SUPPRESS as the default keeps a sub-command from resetting the top-level value.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
                _add_verbose(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    configure_output(verbose=args.verbose or args.debug)
    _quiet_libraries(verbose=args.verbose or args.debug)
    with sigterm_interrupts():
        try:
            return int(args.handler(args) or 0)
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the one place every failure becomes one line
            # A second Ctrl-C/SIGTERM now would only cut the line or kill with -15. Called as
            # the `tsdl` process (no argv), signals stay ignored until it has exited.
            with ending(until_exit=argv is None):
                if args.debug:
                    traceback.print_exc()
                line, code = failure_line(exc, args.command)
                print(line, file=sys.stderr)
            return code


def _quiet_libraries(*, verbose: bool) -> None:
    """Beyond `configure_output`: urllib3 warns on every retry against an unreachable API server,
    and MLflow resets its logger on import (its level comes from the environment)."""
    if not verbose:
        logging.getLogger("urllib3").setLevel(logging.ERROR)
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


if __name__ == "__main__":
    sys.exit(main())
