"""`tsdl doctor` (pre-flight or post-mortem) and `tsdl lr-find`."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from tsdl.cli._common import add_config_args, config_from_args
from tsdl.errors import ConfigError

__all__ = ["register"]

_DOCTOR_EPILOG = textwrap.dedent(
    """\
    examples:
      tsdl doctor -c cfg.yaml                  pre-flight: data checklist, first batch, overfit one
                                               batch, gradient health, LR range test
      tsdl doctor --run-id 3f2a...             post-mortem: classify a run's learning curves and
                                               log the report and plots back to the run
      tsdl doctor --run-id <study run id>      the best and worst trials of a Tune study

    Exit code 1 when a check fails. See docs/doctor.md for the rules and the playbook.
    """
)


def register(subparsers: argparse._SubParsersAction) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="find out why training fails: pre-flight checks, or a diagnosis of a finished run",
        epilog=_DOCTOR_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(doctor)
    doctor.add_argument("--run-id", metavar="ID", help="diagnose this MLflow run (or Tune study) instead")
    doctor.add_argument("--tracking-uri", metavar="URI", help="MLflow store of --run-id (default: config / env / local)")
    doctor.add_argument("--out", default="tsdl_doctor", metavar="DIR", help="where the report and plots go")
    doctor.add_argument("--no-log", action="store_true", help="do not log the diagnosis to the MLflow run")
    doctor.add_argument("--lr-steps", type=int, default=150, metavar="N", help="LR range test steps (0 skips it)")
    doctor.add_argument("--overfit-steps", type=int, default=200, metavar="N", help="steps to overfit one batch")
    doctor.set_defaults(handler=_doctor)

    lr_find = subparsers.add_parser(
        "lr-find",
        help="LR range test: sweep the learning rate, plot the loss, suggest an lr",
        description="Exponential LR sweep on the real data and model (one process); the suggestion "
        "uses the valley rule, see docs/doctor.md.",
    )
    add_config_args(lr_find, required=True)
    lr_find.add_argument("--steps", type=int, default=200, metavar="N", help="optimizer steps in the sweep")
    lr_find.add_argument("--min-lr", type=float, default=1e-7, metavar="LR")
    lr_find.add_argument("--max-lr", type=float, default=1.0, metavar="LR")
    lr_find.add_argument("--plot", default="lr_find.png", metavar="PNG", help="where to write the plot")
    lr_find.add_argument(
        "--apply", nargs="?", const="", default=None, metavar="FILE",
        help="write a copy of the config with the suggested lr (default: <config>.lr-find.yaml)",
    )
    lr_find.set_defaults(handler=_lr_find)


def _doctor(args: argparse.Namespace) -> int:
    from tsdl.doctor.postmortem import diagnose_run
    from tsdl.doctor.preflight import run_preflight

    out = Path(args.out)
    if args.run_id:
        uri = args.tracking_uri
        if uri is None and args.config:
            from tsdl.tracking import resolve_tracking_uri

            uri = resolve_tracking_uri(config_from_args(args).tracking)
        report = diagnose_run(args.run_id, tracking_uri=uri, out_dir=out, log_to_run=not args.no_log)
    else:
        if not args.config:
            raise ConfigError("tsdl doctor needs -c CONFIG (pre-flight) or --run-id ID (post-mortem)",
                              hint="e.g. `tsdl doctor -c config.yaml`")
        out.mkdir(parents=True, exist_ok=True)
        report = run_preflight(config_from_args(args), title=f"tsdl doctor (pre-flight) {args.config}",
                               out_dir=out, overfit_steps=args.overfit_steps, lr_steps=args.lr_steps)
        markdown = out / "doctor_report.md"
        markdown.write_text(report.to_markdown())
        report.artifacts["report"] = str(markdown)
    print(report.render())
    return 0 if report.ok else 1


def _lr_find(args: argparse.Namespace) -> int:
    from tsdl.doctor.lr_find import find_lr, lr_find_png, write_config_with_lr

    config = config_from_args(args)
    result = find_lr(config, num_steps=args.steps, min_lr=args.min_lr, max_lr=args.max_lr)
    lr = config.training.optimizer.lr
    png = lr_find_png(result, args.plot, configured_lr=lr)
    low, high = result.good_range
    print(f"LR range test: {len(result.lrs)} steps, {result.lrs[0]:.1e} .. {result.lrs[-1]:.1e}"
          + (" (stopped: loss diverged)" if result.diverged else ""))
    print(f"  suggested lr (valley): {result.suggested_lr:.3g}")
    print(f"  steepest descent:      {result.steepest_lr:.3g}")
    print(f"  good range:            {low:.3g} .. {high:.3g}")
    print(f"  configured lr:         {lr:.3g} ({result.position(lr)})")
    print(f"  plot:                  {png}")
    if args.apply is not None:
        target = Path(args.apply) if args.apply else Path(args.config).with_suffix(".lr-find.yaml")
        write_config_with_lr(config, result.suggested_lr, target)
        print(f"  wrote {target} with training.optimizer.lr = {result.suggested_lr:.3g}")
    return 0
