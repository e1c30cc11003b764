"""`tsdl train | evaluate | predict`."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from tsdl.cli._common import add_config_args, add_name_args, check_name_args, config_from_args
from tsdl.errors import ConfigError

__all__ = ["register"]

_TRAIN_EPILOG = textwrap.dedent(
    """\
    examples:
      tsdl train -c examples/etth1.yaml                       in-process Ray, local MLflow store
      tsdl train -c cfg.yaml --num-workers 2                  2 DDP workers on this machine
      tsdl train -c cfg.yaml --address auto --gpus            a `ray start --head` cluster with GPUs
      tsdl train --resume tsdl-20261125-101500                continue an interrupted run
      tsdl train -c cfg.yaml --set training.max_epochs=5      override any config value
      tsdl train -c new.yaml --init-from <MLflow run id>      fine-tune an earlier run (docs/finetuning.md)
      tsdl train -c cfg.yaml --run-name job-1 --resume-if-exists   same command starts or resumes (RayJob retries)

    The data checklist runs first; the run's name (printed at the start) is its directory under
    resources.storage_path and the handle for --resume. Metrics, checkpoints and plots go to MLflow
    (`mlflow ui` in this directory to browse them).
    """
)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a model with Ray Train (DDP) and track it in MLflow",
        epilog=_TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_args(train)
    train.add_argument("--num-workers", type=int, metavar="N", help="Ray Train workers (DDP ranks)")
    train.add_argument("--gpus", action="store_true", help="one GPU per worker (AMP per training.precision)")
    train.add_argument("--address", metavar="ADDR", help="Ray address: auto | host:6379 | ray://host:10001 (default: in-process); "
                       "must answer within resources.connect_timeout_s (10 s)")
    train.add_argument("--resume", metavar="RUN", help="continue the named run from its last checkpoint")
    add_name_args(train, "run", default="<experiment>-<time>", found="under resources.storage_path")
    train.add_argument(
        "--init-from",
        metavar="RUN_ID|CHECKPOINT",
        help="fine-tune: start from an earlier run's best weights (see the config's finetune: section)",
    )
    train.add_argument(
        "--reproduce",
        metavar="RUN_ID",
        help="rerun an MLflow run from its logged config and manifest; exit 1 if metrics differ",
    )
    _add_tracking_uri(train)
    train.add_argument("--quiet", action="store_true", help="only errors and the final summary")
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser(
        "evaluate", help="test metrics of a trained model next to the seasonal-naive baseline"
    )
    add_config_args(evaluate)
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="a checkpoint directory (holds best.pt)")
    source.add_argument("--run-id", metavar="ID", help="an MLflow run id of `tsdl train`")
    _add_tracking_uri(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    predict = subparsers.add_parser(
        "predict", help="forecast the next horizon of every series in a file (long-format Parquet out)"
    )
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", metavar="DIR", help="a checkpoint directory (holds best.pt)")
    source.add_argument("--run-id", metavar="ID", help="an MLflow run id of `tsdl train`")
    predict.add_argument(
        "--input", required=True, metavar="FILE|URI",
        help="history to forecast from (CSV/Parquet, a path or s3://... URI), or a dataset name such as ETTh1; "
        "a model with data.covariates.future also needs H rows per series after the history, target empty, "
        "covariates filled (docs/data.md#predict-input)",
    )
    predict.add_argument(
        "--output", default="forecasts.parquet", metavar="FILE|URI", help="where to write (path or s3://...)"
    )
    _add_tracking_uri(predict)
    predict.set_defaults(handler=_predict)


def _add_tracking_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow store (default: $MLFLOW_TRACKING_URI, else tracking.tracking_uri, else ./mlflow.db)",
    )


def _train(args: argparse.Namespace) -> int:
    from tsdl import api

    check_name_args(args, "run", example="my-job")
    if args.reproduce:
        outcome = api.reproduce(args.reproduce, tracking_uri=args.tracking_uri, address=args.address)
        print(outcome.table)
        if not outcome.data_matches:
            print("note: the input data changed since the original run (content hash differs)")
        verdict = "reproduced" if outcome.match else "NOT reproduced"
        print(f"{verdict}: run {outcome.original_run_id} -> {outcome.result.mlflow_run_id}")
        return 0 if outcome.match else 1

    if args.resume:
        _refuse_config_flags_on_resume(args)
    overrides: list = list(args.overrides)
    if args.num_workers is not None:
        overrides.append(("resources.num_workers", args.num_workers))
    if args.gpus:
        overrides.append(("resources.use_gpu", True))
    args.overrides = overrides
    config = config_from_args(args)
    result = api.train(
        config,
        address=args.address,
        resume=args.resume,
        run_name=args.run_name,
        progress=not args.quiet,
        init_from=args.init_from,
        resume_if_exists=args.resume_if_exists,
        tracking_uri=args.tracking_uri,
    )
    print(_summary(result, quiet=args.quiet))
    return 0


def _refuse_config_flags_on_resume(args: argparse.Namespace) -> None:
    """A resumed run keeps the config its checkpoints were written with; say so, don't drop flags."""
    given = [
        flag
        for flag, value in (
            ("-c", args.config),
            ("--set", args.overrides),
            ("--num-workers", args.num_workers),
            ("--gpus", args.gpus),
        )
        if value
    ]
    if given:
        raise ConfigError(
            f"--resume {args.resume} continues the run with its stored config; "
            f"{', '.join(given)} would be ignored",
            hint="drop them to resume as is, or start a new run from its weights: "
            "`tsdl train -c NEW.yaml --init-from <its MLflow run id>`",
        )


def _evaluate(args: argparse.Namespace) -> int:
    from tsdl import api

    config = config_from_args(args) if args.config else None
    evaluation = api.evaluate(
        config, checkpoint=args.checkpoint, run_id=args.run_id, tracking_uri=args.tracking_uri
    )
    print(evaluation.tables())
    return 0


def _predict(args: argparse.Namespace) -> int:
    from tsdl import api
    from tsdl.data.datasets import DATASETS, dataset_path

    # A dataset name reads the cached benchmark file (a file of that name wins).
    named = args.input in DATASETS and not Path(args.input).exists()
    path = api.predict(
        run_id=args.run_id,
        checkpoint=args.checkpoint,
        input_path=dataset_path(args.input) if named else args.input,
        output_path=args.output,
        tracking_uri=args.tracking_uri,
    )
    print(f"wrote {path}")
    return 0


def _summary(result, *, quiet: bool = False) -> str:
    """Test metrics next to the baseline, then where the run lives.

    ``--quiet`` keeps one table (original scale); the normalized metrics are in MLflow.
    """
    ev = result.test
    if quiet:
        from tsdl.evaluation.metrics import metrics_table

        table = metrics_table(
            ev.model_original, ev.baseline_original, title=f"test (original scale), {ev.n_windows} windows"
        )
    else:
        table = ev.tables()
    lines = ["", table, ""]
    if result.history and int(result.history[-1].get("best_epoch", -1)) == 0:
        # `keep_starting_model`: a fine-tune whose epochs never beat the parent on validation.
        lines.append("no epoch beat the starting model: the test metrics are the parent's weights (epoch 0)")
    lines += [
        f"run:        {result.run_name}  (resume with `tsdl train --resume {result.run_name}`)",
        f"checkpoint: {result.checkpoint_dir or f'{result.storage_path}/{result.run_name}'}",
    ]
    if result.mlflow_run_id:
        lines.append(f"mlflow run: {result.mlflow_run_id}  (browse with `mlflow ui`)")
    return "\n".join(lines)
