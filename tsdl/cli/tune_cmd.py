"""`tsdl tune`: a staged ASHA + Optuna TPE study, then the leaderboard."""

from __future__ import annotations

import argparse
import textwrap

from tsdl.cli._common import add_config_args, add_name_args, check_name_args, config_from_args

__all__ = ["register"]

_EPILOG = textwrap.dedent(
    """\
    examples:
      tsdl tune --example                              demo: generated data, smoke budget, < 10 min on 2 CPUs
      tsdl tune -c cfg.yaml --budget small             ~20 + 8 trials, in-process Ray
      tsdl tune -c cfg.yaml --address auto             on a `ray start --head` cluster (docs/tuning.md)
      tsdl tune --resume etth1-tune-20261125-101500    continue an interrupted study (finished trials kept)
      tsdl tune -c cfg.yaml --budget small --final-fit retrain the best config, evaluate on test
      tsdl tune -c cfg.yaml --study-name job-1 --resume-if-exists   starts or resumes (RayJob retries)

    Trial 0 is the reference: the config's own values under the same budget. The best config is
    written to <storage>/<study>/best_config.yaml; the study and its trials go to MLflow.
    """
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="hyperparameter study: ASHA + Optuna TPE over Ray Train trials",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(parser)
    parser.add_argument("--budget", choices=("smoke", "small", "full"), help="trial/epoch preset (default: tune.budget)")
    parser.add_argument("--address", metavar="ADDR", help="Ray address: auto | ray://host:10001 (default: in-process)")
    parser.add_argument("--resume", metavar="STUDY", help="continue the named study under resources.storage_path")
    add_name_args(parser, "study", default="<experiment>-study-<time>", found="(finished trials kept)")
    parser.add_argument("--final-fit", action="store_true", help="retrain the best config and evaluate on test")
    parser.add_argument("--example", action="store_true", help="run the demo study on generated data")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="leaderboard rows to print (default 10)")
    parser.add_argument("--quiet", action="store_true", help="only errors and the final summary")
    parser.set_defaults(handler=_tune)


def _tune(args: argparse.Namespace) -> int:
    from tsdl.api import tune
    from tsdl.tune import render_leaderboard

    check_name_args(args, "study", example="my-study")

    if args.example:
        from tsdl.tune.example import example_config

        config = example_config(args.overrides)
    else:
        config = config_from_args(args)
    result = tune(
        config,
        budget=args.budget,
        address=args.address,
        resume=args.resume,
        name=args.study_name,
        resume_if_exists=args.resume_if_exists,
        final_fit=args.final_fit,
        progress=not args.quiet,
    )
    print(f"\nstudy {result.name}: leaderboard (best val_loss first)")
    print(render_leaderboard(result.leaderboard, top=args.top))
    ratio = result.best_val_loss / result.reference_val_loss if result.reference_val_loss else float("nan")
    print(
        f"\nbest val_loss {result.best_val_loss:.4g} vs reference {result.reference_val_loss:.4g} "
        f"({ratio:.3f}x); ASHA ran {result.asha.epochs_run} of {result.asha.full_budget_epochs} epochs "
        f"({result.asha.efficiency:.0%} of the full budget), {result.asha.stopped_trials} trials stopped early"
    )
    for path, why in result.frozen.items():
        print(f"frozen: {path} ({why})")
    print(f"best config: {result.path}/best_config.yaml")
    if result.mlflow_run_id:
        print(f"MLflow study run: {result.mlflow_run_id}")
    if result.final_fit is not None:
        print(f"final fit: run {result.final_fit.run_name}, test {result.final_fit.test.flat()}")
    return 0
