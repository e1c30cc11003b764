"""Config -> Ray Train `TorchTrainer`: scaling, failure handling, checkpoints and dataset shards."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tsdl.config import TsdlConfig
from tsdl.storage import absolute, ray_storage
from tsdl.train.logger import MetricsLogger
from tsdl.train.worker import EpochHook, train_loop_per_worker

if TYPE_CHECKING:
    from ray.train import UserCallback
    from ray.train.torch import TorchTrainer

    from tsdl.data import PreparedData

__all__ = ["build_trainer", "make_loop_config", "model_dims", "resolve_storage_path"]


def build_trainer(
    config: TsdlConfig,
    prepared: PreparedData,
    *,
    run_name: str,
    storage_path: str | None = None,
    callbacks: Sequence[UserCallback] = (),
    logger_factory: Callable[..., MetricsLogger] | None = None,
    epoch_hooks: Sequence[EpochHook] = (),
    init_state: dict[str, Any] | None = None,
    progress_queue: Any | None = None,
) -> TorchTrainer:
    """A TorchTrainer for one training run.

    Re-running with the same `run_name` and `storage_path` resumes from the run's latest
    checkpoint (Ray Train V2 restores its checkpoint manager from storage).

    Args:
        config: the resolved config (serialized into every worker).
        prepared: scaled series from `tsdl.data.prepare_data`; sharded over workers by Ray Data.
        run_name: Ray run name, also the directory under `storage_path`.
        storage_path: overrides `config.resources.storage_path`.
        callbacks: Ray Train `UserCallback`s (e.g. Tune's `TuneReportCallback`).
        logger_factory: picklable ``factory(rank=...) -> MetricsLogger`` for per-step/epoch metrics.
        epoch_hooks: picklable ``hook(epoch, rank)`` called at the start of every epoch.
        init_state: a parent run's weights (`tsdl.train.pretrained.ParentCheckpoint.weights`) to
            start from, per `config.finetune`; pickled to every worker with the loop config.
            None with `finetune.init_from` set to a checkpoint directory loads it here (how Tune
            trials built from one config all start from the same pretrained run).
        progress_queue: a ``ray.util.queue.Queue``; rank 0 puts each epoch's metrics into it.
    """
    import ray.data
    import ray.train
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    # Keep the terminal for tsdl's own progress lines: no per-dataset progress bars, and Ray
    # Train's internal INFO lines (one per report) only in its log files.
    ray.data.DataContext.get_current().enable_progress_bars = False

    res = config.resources
    storage, storage_fs = ray_storage(storage_path or res.storage_path)
    resources: dict[str, float] = {"CPU": res.cpus_per_worker}
    if res.use_gpu:
        resources["GPU"] = res.gpus_per_worker
    loop_config = make_loop_config(
        config,
        prepared,
        logger_factory=logger_factory,
        epoch_hooks=epoch_hooks,
        init_state=init_state,
        progress_queue=progress_queue,
    )
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=res.num_workers, use_gpu=res.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage,
            storage_filesystem=storage_fs,  # S3 endpoint/region from the driver's environment
            failure_config=FailureConfig(max_failures=res.max_failures),
            # Every checkpoint carries both last.pt and best.pt, so the latest one is enough.
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            callbacks=list(callbacks),
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        datasets=prepared.to_ray_datasets(num_workers=res.num_workers),
        dataset_config=ray.train.DataConfig(datasets_to_split=["train", "val"]),
    )


def make_loop_config(
    config: TsdlConfig,
    prepared: PreparedData,
    *,
    logger_factory: Callable[..., MetricsLogger] | None = None,
    epoch_hooks: Sequence[EpochHook] = (),
    init_state: dict[str, Any] | None = None,
    progress_queue: Any | None = None,
) -> dict[str, Any]:
    """The picklable argument of `tsdl.train.worker.run_worker` (see `build_trainer` for the fields)."""
    if init_state is None and config.finetune.init_from is not None:
        from tsdl.train.pretrained import resolve_parent

        init_state = resolve_parent(config.finetune.init_from).weights
    return {
        "config": config.model_dump(mode="json"),
        "dims": model_dims(prepared),
        "scaler_state": prepared.scalers.state_dict(),
        "logger_factory": logger_factory,
        "epoch_hooks": list(epoch_hooks),
        "init_state": init_state,
        "progress_queue": progress_queue,
    }


def model_dims(prepared: PreparedData) -> dict[str, int]:
    """The shape arguments of `tsdl.models.build_model` for this data (`PreparedData.model_dims`)."""
    return prepared.model_dims


def resolve_storage_path(path: str) -> str:
    """Local paths become absolute (Ray requires it); URIs (s3://, gs://, ...) pass through."""
    return absolute(path)
