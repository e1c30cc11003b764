"""The Python API behind the CLI: `train`, `evaluate`, `predict`, `check_data`.

Tracking is wired in here (not in `tsdl.train`), so the training layer stays independent of MLflow.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tsdl.config import TsdlConfig
from tsdl.errors import ConfigError, TrackingError, TrainingError, TsdlError, os_error_hint, writing
from tsdl.interrupts import keep_sigint_handler

__all__ = [
    "Reproduction",
    "TrainResult",
    "check_data",
    "evaluate",
    "fetch_dataset",
    "predict",
    "reproduce",
    "train",
    "tune",
]


@dataclass
class TrainResult:
    """What a finished training run produced."""

    run_name: str
    checkpoint_dir: Path | None
    """The run's latest checkpoint (best.pt, last.pt) with local storage; None with remote storage."""
    history: list[dict[str, float]]
    test: Any  # tsdl.train.Evaluation
    mlflow_run_id: str | None = None
    storage_path: str = ""
    data_hash: str = ""
    """Content hash of the input data the run trained on (as in its manifest)."""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def best_val_loss(self) -> float:
        return min(h["val_loss"] for h in self.history)


def check_data(config: TsdlConfig):
    """Run the pre-training checklist only; returns the `CheckReport`."""
    from tsdl.data import run_checklist

    return run_checklist(config)


def fetch_dataset(name: str, *, force: bool = False) -> Path:
    """Download benchmark dataset ``name`` into the cache (SHA-256 verified); returns its path."""
    from tsdl.data.datasets import fetch_dataset as _fetch

    return _fetch(name, force=force)


def train(
    config: TsdlConfig,
    *,
    address: str | None = None,
    resume: str | None = None,
    run_name: str | None = None,
    epoch_hooks: tuple = (),
    progress: bool = True,
    tags: dict[str, str] | None = None,
    init_from: str | None = None,
    resume_if_exists: bool = False,
    tracking_uri: str | None = None,
) -> TrainResult:
    """Check and prepare the data, train with Ray Train, evaluate on test, track in MLflow.

    Whatever happens after the MLflow run starts, it ends FINISHED, FAILED (any error, also one
    after training) or KILLED (Ctrl-C; SIGTERM under the CLI), never left RUNNING.

    Args:
        config: resolved config; ignored with ``resume`` (the run's stored config is used).
        address: Ray address (None: in-process; "auto": `ray start --head` cluster).
        resume: name of an interrupted run to continue from its last checkpoint.
        run_name: name for a new run (default: ``<experiment>-<timestamp>``).
        epoch_hooks: ``hook(epoch, rank)`` callables run on the workers (fault injection, probes).
        progress: print one line per epoch.
        tags: extra MLflow tags of the run.
        init_from: start from this MLflow run id or checkpoint directory (`finetune.init_from`).
        resume_if_exists: with `run_name`: resume that run if it exists under the storage path,
            else start it (a RayJob retry's entrypoint). Without it an existing name is refused.
        tracking_uri: MLflow store; beats $MLFLOW_TRACKING_URI and `tracking.tracking_uri`.
    """
    from tsdl.train import RunRecord

    _check_names(run_name=run_name, resume=resume)
    config = _absolute_paths(config)
    address = address or config.resources.address
    storage = config.resources.storage_path
    if resume is None and run_name is not None and RunRecord.exists(storage, run_name):
        if not resume_if_exists:
            raise ConfigError(
                f"a run named '{run_name}' already exists under {storage}",
                hint=f"continue it with --resume {run_name} (or --resume-if-exists), or pick another --run-name",
            )
        _check_same_run(storage, run_name, config)
        resume, init_from = run_name, None  # the run keeps the parent it started from
    record = None
    if resume is not None and init_from is not None:
        raise ConfigError(
            "give either --resume or --init-from, not both",
            hint="--resume continues a run (it keeps its own parent); --init-from starts a new one",
        )
    if resume is not None:
        record = RunRecord.load(storage, resume)
        config = _stored_config(record.config, f"{storage}/{resume}/tsdl_run.json")
        run_name = resume
        if record.status == "FINISHED":  # not hidden by --quiet: nothing new is trained
            print(f"run {resume} already finished: nothing to run (its stored results follow)", flush=True)
        else:
            print(f"resuming run {resume}", flush=True)
    hash_of_config = _run_workload_hash(config)
    run_name = run_name or _fresh_run_name(storage, config.experiment.name)
    config = _with_kernels(_with_torch_threads(config, address))
    _preflight(config, storage, tracking_uri, progress=progress)
    _check_compile(config, address)
    _check_local_fit(config, address)
    with tempfile.TemporaryDirectory(prefix="tsdl-parent-") as scratch:  # a downloaded parent
        setup = _setup_run(config, init_from, Path(scratch), progress=progress, tracking_uri=tracking_uri)
        _connect_ray(setup.config, address)  # before MLflow: a run that cannot start leaves no run
        tags = {**(tags or {}), **setup.tags}
        tracker = _start_tracking(setup.config, setup.prepared, run_name, record, tags, tracking_uri)
        record = record or RunRecord(
            run_name=run_name,
            storage_path=storage,
            config=setup.config.model_dump(mode="json"),
            mlflow_run_id=tracker.run_id if tracker else None,
            workload_hash=hash_of_config,
        )
        with _run_ends(tracker, record):
            return _train_and_evaluate(
                setup, record, tracker, address=address, epoch_hooks=epoch_hooks, progress=progress
            )


_RUN_IGNORES = ("tune.",)  # a train run does not read the tune section


def _run_workload_hash(config: TsdlConfig) -> str:
    from tsdl.train.workload import workload_hash

    return workload_hash(config, ignore=_RUN_IGNORES)


def _check_same_run(storage: str, run_name: str, config: TsdlConfig) -> None:
    """Resume ``run_name`` only with the config it was started with (N3: a RayJob resubmitted under
    the same name must not hand back the old run's model for a changed config)."""
    from tsdl.storage import join
    from tsdl.train import RunRecord
    from tsdl.train.workload import workload_diff, workload_hash

    record = RunRecord.load(storage, run_name)
    stored = record.workload_hash or workload_hash(record.config, ignore=_RUN_IGNORES)  # older records
    if stored == _run_workload_hash(config):
        return
    diff = workload_diff(record.config, config, ignore=_RUN_IGNORES)
    raise ConfigError(
        f"run '{run_name}' under {storage} was started with another config ({diff or 'changed'}), "
        "so it cannot be resumed with this one",
        hint=f"run it under a new name (--run-name, or a new deploy.name / release), or delete "
        f"{join(storage, run_name)} to start it again",
    )


def _check_names(**names: str | None) -> None:
    """Run and study names become directories under the storage path: one pattern for all
    (tsdl.config.names), checked before anything is read or written."""
    from tsdl.config.names import check_name

    for what, name in names.items():
        if name is not None:
            check_name(name, f"--{what.replace('_', '-')}")


def _with_torch_threads(config: TsdlConfig, address: str | None) -> TsdlConfig:
    """The config with its torch thread count resolved, so the stored run (config, manifest)
    says how many it trained with and a resume or --reproduce uses the same on any machine."""
    from tsdl.train.threads import torch_threads

    if config.resources.torch_threads is not None:
        return config
    threads = torch_threads(config, in_process=_in_driver(config, address))
    return config.model_copy(
        update={"resources": config.resources.model_copy(update={"torch_threads": threads})}
    )


def _with_kernels(config: TsdlConfig) -> TsdlConfig:
    """The config with ``training.optimizer.implementation: auto`` resolved for the run's device,
    stored with the run like the thread count (a resume or --reproduce uses the same kernel)."""
    from tsdl.train.kernels import adamw_kernel

    optimizer = config.training.optimizer
    kernel = adamw_kernel(optimizer.implementation, "cuda" if config.resources.use_gpu else "cpu")
    if kernel == optimizer.implementation:
        return config
    training = config.training.model_copy(update={"optimizer": optimizer.model_copy(update={"implementation": kernel})})
    return config.model_copy(update={"training": training})


def _check_compile(config: TsdlConfig, address: str | None) -> None:
    """``training.compile: true`` fails in seconds where this machine trains and cannot compile
    (workers on a cluster check their own machine when they start)."""
    if config.training.compile and address is None:
        from tsdl.train.kernels import check_compile_supported

        check_compile_supported("cuda" if config.resources.use_gpu else "cpu")


def _fresh_run_name(storage: str, experiment: str) -> str:
    """``<experiment>-<timestamp>``, suffixed when a run started in the same second already has it
    (a generated name must never resume someone else's checkpoints)."""
    from tsdl.train import RunRecord

    base = f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}"
    name, n = base, 1
    while RunRecord.exists(storage, name):
        n += 1
        name = f"{base}-{n}"
    return name


def _evaluate_test(model: Any, loss: Any, prepared: Any) -> Any:
    """Score the test windows on the original scale, with each series' history for the baselines."""
    from tsdl.train import evaluate_windows

    return evaluate_windows(
        model,
        loss,
        prepared.windows("test"),
        inverse=_inverse(prepared.scalers),
        history=prepared.history("test"),
        season_length=prepared.season_length,
    )


def _setup_run(
    config: TsdlConfig, init_from: str | None, scratch: Path, *, progress: bool, tracking_uri: str | None = None
):
    """Everything that can fail on the user's input fails here, in seconds, before Ray starts.

    Returns the run's `tsdl.train.finetune.FinetuneSetup` (config, data, parent, lineage).
    """
    from tsdl.train.finetune import FinetuneSetup

    download = functools.partial(_download_parent, config, into=scratch, tracking_uri=tracking_uri)
    setup = FinetuneSetup.resolve(config, init_from, download=download)
    if progress:
        print(setup.prepared.report.render())
    return setup


@contextlib.contextmanager
def _run_ends(tracker, record) -> Iterator[None]:
    """End the MLflow run and the run record however the block ends: FAILED on an error, KILLED
    on Ctrl-C/SIGTERM (and Ray's SIGTERM ``sys.exit``), FINISHED otherwise."""
    try:
        yield
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED"
        with contextlib.suppress(Exception):  # a second failure must not hide the first
            record.status = status
            record.save()
        if tracker is not None:
            with contextlib.suppress(Exception):
                tracker.finish(status)
        raise
    if tracker is not None:
        tracker.finish("FINISHED")


def _train_and_evaluate(setup, record, tracker, *, address, epoch_hooks, progress) -> TrainResult:
    from tsdl.ray_connection import ensure_ray
    from tsdl.train.progress import ProgressPrinter

    config, run_name = setup.config, record.run_name
    record.status = "RUNNING"
    with writing(f"{record.storage_path}/{run_name}", "run directory"):
        record.save()
    in_process = _in_driver(config, address)  # one local worker: no Ray Train group
    if not in_process:
        ensure_ray(address)
    logger_factory = None
    if tracker is not None:
        from tsdl.tracking import worker_logger

        logger_factory = functools.partial(worker_logger, tracker.run_id, tracker.tracking_uri)
    if progress:
        print(f"run {run_name}: {config.resources.num_workers} worker(s), storage {record.storage_path}")
    printer = ProgressPrinter(local=in_process) if progress else contextlib.nullcontext()
    try:
        with printer:
            result = _fit(
                config,
                setup.prepared,
                in_process=in_process,
                run_name=run_name,
                storage_path=record.storage_path,
                logger_factory=logger_factory,
                epoch_hooks=epoch_hooks,
                progress_queue=printer.queue if progress else None,
                init_state=setup.init_state,
            )
    except Exception as exc:  # Ray wraps worker errors; surface the worker's own message
        raise _worker_failure(exc, run_name, tracker.run_id if tracker else None) from exc

    outcome = _finish_run(
        config, setup.prepared, result, run_name, record.storage_path, tracker, setup.lineage
    )
    record.status = "FINISHED"
    with writing(f"{record.storage_path}/{run_name}", "run record"):
        record.save()
    return outcome


def _in_driver(config: TsdlConfig, address: str | None) -> bool:
    """The in-driver path, unless the caller already joined a Ray cluster (``ray.init(address=...)``
    in a notebook): that Ray is the cluster to train on."""
    from tsdl.ray_connection import connected_cluster
    from tsdl.train.in_process import trains_in_process

    return trains_in_process(config, address) and not connected_cluster()


def _connect_ray(config: TsdlConfig, address: str | None) -> None:
    """Join (or start) Ray for a Ray Train run and make sure its workers can be placed: a dead
    address fails within resources.connect_timeout_s, workers this machine cannot hold fail at
    once, a cluster that must grow gets resources.placement_timeout_s (never a silent hang)."""
    from tsdl.ray_connection import ensure_ray, reserve_worker_group

    if _in_driver(config, address):
        return
    ensure_ray(address, connect_timeout_s=config.resources.connect_timeout_s)
    reserve_worker_group(config, say=functools.partial(print, flush=True))


def _check_ray_address(address: str | None, config: TsdlConfig) -> None:
    """A cluster address that does not answer fails within resources.connect_timeout_s, before
    the data is prepared (study.py joins it only after that)."""
    from tsdl.ray_connection import check_address

    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        check_address(target, timeout_s=config.resources.connect_timeout_s)


def _check_local_fit(config: TsdlConfig, address: str | None) -> None:
    """Workers this machine cannot hold are refused before the data is read or Ray starts."""
    from tsdl.ray_connection import connected_cluster, reserve_worker_group

    here = address is None and not os.environ.get("RAY_ADDRESS") and not connected_cluster()
    if here and not _in_driver(config, address):
        reserve_worker_group(config)  # refuses or returns: never waits for nodes here


def _stored_config(raw: Any, where: str) -> TsdlConfig:
    """A config written by an earlier run, validated with the same one-line errors as a YAML file."""
    from tsdl.config import parse_config

    if not isinstance(raw, dict):
        raise TrainingError(f"{where}: 'config' is not a mapping", hint="start a new run with -c CONFIG")
    return parse_config(raw, source=where)


def tune(config: TsdlConfig, *, final_fit: bool = False, **kwargs: Any):
    """Run (or resume) a tuning study and record it in MLflow (see `tsdl.tune.run_study`).

    Keyword arguments are those of `run_study`: budget, address, resume, name,
    resume_if_exists, progress. The tracking store and the storage path are probed first: the
    study logs to MLflow only when it ends, which must not be hours too late. With ``final_fit``
    the best config is retrained with `train` (same Ray address) and tested.
    """
    from tsdl.tracking.study import log_study
    from tsdl.tune import run_study
    from tsdl.tune.study import stored_config

    _check_names(study_name=kwargs.get("name"), resume=kwargs.get("resume"))
    config = _absolute_paths(config)
    kwargs["address"] = kwargs.get("address") or config.resources.address
    storage = config.resources.storage_path
    study = kwargs.get("resume") or (kwargs.get("name") if kwargs.get("resume_if_exists") else None)
    probed = (stored_config(storage, study) if study else None) or config
    _preflight(probed, storage, None, progress=kwargs.get("progress", True))
    _check_ray_address(kwargs["address"], config)
    refit = None
    if final_fit:
        refit = functools.partial(train, address=kwargs.get("address"), progress=kwargs.get("progress", True))
    return run_study(config, study_logger=log_study, final_fit=refit, **kwargs)


def _fit(config: TsdlConfig, prepared, *, in_process: bool, run_name: str, storage_path: str, **loop):
    """Train: in this process for one local worker (`tsdl.train.in_process`), else a TorchTrainer.

    Both keep the latest checkpoint under ``<storage>/<run_name>``, restart from it up to
    ``resources.max_failures`` times and resume from it when the run name exists.
    """
    if in_process:
        from tsdl.train.in_process import fit_in_process
        from tsdl.train.trainer import make_loop_config

        return fit_in_process(
            make_loop_config(config, prepared, **loop),
            prepared,
            run_dir=Path(storage_path) / run_name,
            max_failures=config.resources.max_failures,
        )
    from tsdl.train import build_trainer

    with keep_sigint_handler():  # Ray Train's stays installed after fit() otherwise
        return build_trainer(config, prepared, run_name=run_name, storage_path=storage_path, **loop).fit()


def _absolute_paths(config: TsdlConfig) -> TsdlConfig:
    """Data, storage and a checkpoint-directory parent as absolute paths (URIs unchanged).

    The config is stored with the run (RunRecord, study.json, MLflow), so `evaluate`,
    `--resume`, `--reproduce` and `--init-from` then work from any working directory.
    """
    from tsdl.storage import absolute, is_uri

    raw = config.model_dump(mode="json")
    if raw["data"]["path"] is not None:
        raw["data"]["path"] = absolute(raw["data"]["path"])
    raw["resources"]["storage_path"] = absolute(raw["resources"]["storage_path"])
    parent = raw["finetune"].get("init_from")
    if parent and not is_uri(parent) and Path(parent).expanduser().exists():
        raw["finetune"]["init_from"] = absolute(parent)
    return TsdlConfig.model_validate(raw)


def _preflight(config: TsdlConfig, storage: str, tracking_uri: str | None, *, progress: bool) -> None:
    """Fail in seconds, before any Ray work, when the results storage or MLflow is unusable.

    Raises:
        StorageError: the storage path cannot be written (missing bucket, denied, unreachable).
        TrackingError: the tracking store cannot be reached or cannot create the experiment.
    """
    from tsdl.storage import probe_writable

    probe_writable(storage, what="resources.storage_path")
    if not config.tracking.enabled:
        return
    from tsdl.tracking import probe_tracking, tracking_uri_source

    uri, source = tracking_uri_source(config.tracking, tracking_uri)
    if progress:
        print(f"tracking: MLflow at {uri} (from {source})", flush=True)
    probe_tracking(config, tracking_uri)


def _start_tracking(config: TsdlConfig, prepared, run_name: str, record, tags, tracking_uri=None):
    if not config.tracking.enabled:
        return None
    from tsdl.tracking import MlflowRun

    if record is not None and record.mlflow_run_id:
        return MlflowRun.resume(record.mlflow_run_id, config, tracking_uri=tracking_uri)
    return MlflowRun.start(
        config, data_stats=prepared.stats(), run_name=run_name, extra_tags=tags, tracking_uri=tracking_uri
    )


def _finish_run(
    config, prepared, result, run_name: str, storage: str, tracker, lineage=None
) -> TrainResult:
    from tsdl.train import load_forecaster
    from tsdl.train.checkpointing import load_last

    if result.checkpoint is None:
        raise TrainingError(f"run '{run_name}' reported no checkpoint", hint="check the worker logs above")
    with _local_copy(result.checkpoint) as (local_dir, kept):
        history = load_last(local_dir).history
        model, loss, _, best = load_forecaster(local_dir)
        evaluation = _evaluate_test(model, loss, prepared)
        if tracker is not None:
            with _logging_results(tracker, f"{storage}/{run_name}"):
                _log_outcome(tracker, config, prepared, evaluation, history, local_dir, best, lineage)
    return TrainResult(
        run_name=run_name,
        checkpoint_dir=local_dir if kept else None,
        history=history,
        test=evaluation,
        mlflow_run_id=tracker.run_id if tracker else None,
        storage_path=storage,
        data_hash=prepared.content_hash(),
        extras={"lineage": lineage} if lineage else {},
    )


@contextlib.contextmanager
def _logging_results(tracker, run_dir: str) -> Iterator[None]:
    """A full disk or a tracking server gone after training: one line, the checkpoint is kept."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (OSError, MlflowException) as exc:
        hint = os_error_hint(exc) if isinstance(exc, OSError) else "check the tracking server"
        raise TrackingError(
            f"logging the results to MLflow run {tracker.run_id} ({tracker.tracking_uri}) failed: "
            f"{' '.join(str(exc).split())[:300]}",
            hint=f"{hint}; the trained checkpoint is kept under {run_dir}",
        ) from exc


@contextlib.contextmanager
def _local_copy(checkpoint) -> Iterator[tuple[Path, bool]]:
    """``(directory, kept)`` of a Ray checkpoint: its own directory when storage is local (kept,
    nothing copied), else a temporary download that is removed when the block ends."""
    import pyarrow.fs

    filesystem = getattr(checkpoint, "filesystem", None)  # None: tsdl.train.in_process's LocalCheckpoint
    if filesystem is None or isinstance(filesystem, pyarrow.fs.LocalFileSystem):
        yield Path(checkpoint.path), True
        return
    with tempfile.TemporaryDirectory(prefix="tsdl-ckpt-") as tmp:
        checkpoint.to_directory(tmp)
        yield Path(tmp), False


def _download_parent(
    config: TsdlConfig, run_id: str, *, into: Path, tracking_uri: str | None = None
) -> tuple[Path, str]:
    """A parent run's checkpoint from the run's MLflow store: (local dir, ``runs:/`` URI).

    The store is the one the child run tracks to (``--tracking-uri``, else $MLFLOW_TRACKING_URI,
    else `tracking.tracking_uri`), so a parent trained with the same flag is found.
    """
    from tsdl.tracking import download_checkpoint, resolve_tracking_uri

    local = download_checkpoint(run_id, resolve_tracking_uri(config.tracking, tracking_uri), dst=into)
    return local, f"runs:/{run_id}/checkpoint"


def _log_outcome(
    tracker, config, prepared, evaluation, history, checkpoint_dir: Path, best, lineage=None
) -> None:
    from tsdl.tracking import build_manifest
    from tsdl.tracking.plots import forecast_png, learning_curve_png

    tracker.log_test_metrics(evaluation.flat())
    tracker.log_text(evaluation.tables(), "test_metrics.txt")
    tracker.log_json(prepared.feature_names, "features.json")
    tracker.log_json(prepared.scalers.state_dict(), "scalers.json")
    tracker.log_manifest(
        build_manifest(
            config=config,
            data_hash=prepared.content_hash(),
            split_boundaries=prepared.split_boundaries,
            scaler_state=prepared.scalers.state_dict(),
        )
        | ({"lineage": lineage} if lineage else {}),
    )
    if config.tracking.log_checkpoints:
        tracker.log_artifact_dir(checkpoint_dir, "checkpoint")
    if config.tracking.plots:
        with tempfile.TemporaryDirectory() as tmp:
            marks = {"best_epoch": best.epoch}
            tracker.log_figure(learning_curve_png(history, Path(tmp) / "learning_curve.png", marks=marks))
            if evaluation.examples:
                tracker.log_figure(forecast_png(evaluation.examples, Path(tmp) / "forecast_vs_actual.png"))


@dataclass
class Reproduction:
    """The verdict of `reproduce`: do the rerun's test metrics equal the original's?"""

    original_run_id: str
    result: TrainResult
    match: bool
    table: str
    data_matches: bool


def reproduce(
    run_id: str, *, tracking_uri: str | None = None, address: str | None = None, rtol: float = 1e-5
) -> Reproduction:
    """Rerun a run from its logged config and manifest and compare the test metrics.

    The data is re-read from the same path; a changed content hash is reported (the metrics then
    cannot be expected to match).
    """
    from tsdl.tracking import compare_metrics, load_run, resolve_tracking_uri

    uri = tracking_uri or resolve_tracking_uri(TsdlConfig().tracking)
    config, manifest, metrics = load_run(run_id, uri)
    resources = config.resources
    if manifest.get("torch_threads"):  # the count it trained with, whatever this machine has
        resources = resources.model_copy(update={"torch_threads": int(manifest["torch_threads"])})
    config = config.model_copy(
        update={
            "tracking": config.tracking.model_copy(update={"tracking_uri": uri}),
            "resources": resources,
        }
    )
    result = train(config, address=address, progress=False, tags={"tsdl.reproduces": run_id}, tracking_uri=uri)
    data_matches = result.data_hash == manifest.get("data_hash")
    original = {k: v for k, v in metrics.items() if k.startswith("test_")}
    rerun = {f"test_{k}": v for k, v in result.test.flat().items()}
    match, table = compare_metrics(original, {k: rerun[k] for k in original if k in rerun}, rtol=rtol)
    return Reproduction(run_id, result, match, table, data_matches)


def evaluate(
    config: TsdlConfig | None = None,
    *,
    checkpoint: str | Path | None = None,
    run_id: str | None = None,
    tracking_uri: str | None = None,
):
    """Test metrics of a trained model (checkpoint directory or MLflow run) on `config`'s data.

    Without `config` the model is scored on the data it was trained on; with one (e.g. new series)
    this is the zero-shot score before fine-tuning: scalers follow its `finetune.scalers`, refit on
    its own train split by default (as a fine-tuning run would), or the trained ones with ``parent``.
    """
    from tsdl.data import prepare_data
    from tsdl.train import load_forecaster

    with _checkpoint_from(checkpoint, run_id, tracking_uri) as checkpoint_dir:
        model, loss, trained_config, best = load_forecaster(checkpoint_dir)
    data_config = config or trained_config
    if config is not None and config.finetune.scalers == "refit":
        prepared = prepare_data(config)  # new series: scalers fitted on their own train split
    else:
        prepared = prepare_data(data_config, fit_scalers=False, scaler_state=best.scaler_state)
    return _evaluate_test(model, loss, prepared)


def predict(
    *,
    run_id: str | None = None,
    checkpoint: str | Path | None = None,
    input_path: str | Path,
    output_path: str | Path,
    tracking_uri: str | None = None,
) -> str:
    """Forecast the next horizon of every series in `input_path`; write long-format Parquet.

    For a model with ``data.covariates.future`` each series in `input_path` ends with the ``H``
    rows to forecast: target empty, known-future covariates filled (docs/data.md, Predict input).
    Both paths may be object-store URIs (s3://...); returns the absolute output path or URI.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tsdl.data import SeriesScalers, prepare_inference
    from tsdl.train import forecast, load_forecaster

    with _checkpoint_from(checkpoint, run_id, tracking_uri) as checkpoint_dir:
        model, loss, config, best = load_forecaster(checkpoint_dir)
    windows = prepare_inference(config, str(input_path), best.scaler_state)
    inverse = _inverse(SeriesScalers.from_state(best.scaler_state))
    fc = forecast(model, loss, windows)
    ids = np.asarray(windows.series_ids)
    point = inverse(fc.point, ids)
    horizon = windows.horizon_times(np.arange(len(windows)))  # [N, H] timestamps
    columns: dict[str, Any] = {
        "unique_id": np.repeat(ids, point.shape[1]),
        "ds": np.asarray(horizon).reshape(-1),
        "y_hat": point.reshape(-1),
    }
    if fc.quantiles is not None:
        q = inverse(fc.quantiles, ids)
        for j, level in enumerate(fc.levels):
            columns[f"y_hat_q{int(round(level * 100)):02d}"] = q[:, :, j].reshape(-1)
    from tsdl.storage import write_bytes

    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), sink)
    return write_bytes(output_path, sink.getvalue().to_pybytes())


def _inverse(scalers):
    """``(values [N, ...], series_ids [N]) -> values`` in the data's units (target column)."""
    return lambda values, ids: scalers.inverse_transform(ids, values)


@contextlib.contextmanager
def _checkpoint_from(
    checkpoint: str | Path | None, run_id: str | None, tracking_uri: str | None
) -> Iterator[Path]:
    """The checkpoint directory to load; a run's download is deleted once the block is done."""
    if (checkpoint is None) == (run_id is None):
        raise TrainingError("give exactly one of --checkpoint and --run-id", hint="e.g. --run-id <MLflow run id>")
    if checkpoint is not None:
        yield Path(checkpoint)
        return
    from tsdl.tracking import download_checkpoint

    with tempfile.TemporaryDirectory(prefix="tsdl-ckpt-") as tmp:
        yield download_checkpoint(run_id, tracking_uri, dst=tmp)


def _worker_failure(exc: BaseException, run_name: str, mlflow_run_id: str | None) -> TrainingError:
    """The run's failure with exactly one fix: the worker's own when it raised a TsdlError (it
    knows the cause; resuming with the same stored config would fail the same way), else resume.

    A NaN/inf loss names `tsdl doctor --run-id` for this run when it is tracked in MLflow.
    """
    from tsdl.train import NonFiniteLoss

    root = _root_cause(exc)
    if isinstance(root, NonFiniteLoss) and mlflow_run_id:
        root = root.for_run(mlflow_run_id)
    if isinstance(root, TsdlError):
        message, hint = root.message, root.hint
    else:  # only the text came through: a TsdlError's own "(fix: ...)" is split off, not doubled
        text = str(root).strip().splitlines()
        message, _, hint = (text[-1] if text else type(root).__name__).partition(" (fix: ")
        hint = hint.removesuffix(")") or None
    return TrainingError(
        f"training run '{run_name}' failed: {message}",
        hint=hint or f"fix the cause, then continue with `tsdl train --resume {run_name}`",
    )


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: Ray nests a worker's error several levels deep (RayTaskError's
    ``cause``, Ray Train's ``worker_failures`` by rank or ``controller_failure``)."""
    seen = exc
    for _ in range(32):  # a cycle-proof bound; real chains are a few levels deep
        failures = getattr(seen, "worker_failures", None)
        first_worker = failures[min(failures)] if isinstance(failures, dict) and failures else None
        nxt = (getattr(seen, "cause", None) or first_worker
               or getattr(seen, "controller_failure", None) or seen.__cause__)
        if not isinstance(nxt, BaseException) or nxt is seen:
            break
        seen = nxt
    return seen
