"""Where the training loop runs: the :class:`WorkerRuntime` interface and its two implementations.

:class:`RayTrainRuntime` runs inside a ``TorchTrainer`` worker (Ray Data shards, DDP);
:class:`InProcessRuntime` runs a single worker in the calling process (the driver of
``tsdl train``, or a Tune trial actor) on the windows of the prepared data, which saves it the
worker group and the Ray Data pipeline (``tsdl.train.in_process``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import torch

from tsdl.train.checkpoint_store import Restored
from tsdl.train.checkpointing import checkpoint_dir_name
from tsdl.train.recovery import EpochCheckpoints

if TYPE_CHECKING:
    from tsdl.data import PreparedData, WindowSet

__all__ = ["InProcessRuntime", "RayTrainRuntime", "Report", "WorkerRuntime"]

Report = Callable[[dict[str, Any], "str | None"], None]
"""``report(metrics, checkpoint_dir)``: checkpoint_dir is a temporary directory (copy it now) or None."""


class WorkerRuntime(Protocol):
    """Where the loop runs: rank, device, data, the checkpoint to resume from, and reporting."""

    rank: int
    world: int
    device: torch.device

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module: ...

    def windows(self, split: str, *, stride: int | None) -> WindowSet: ...

    def checkpoint(self) -> Restored | None: ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None: ...


class RayTrainRuntime:
    """Inside a Ray Train worker: DDP via ``prepare_model``, windows from the Ray Data shards."""

    def __init__(self, loop_config: dict[str, Any]) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self._config = loop_config
        self._checkpoints = EpochCheckpoints()

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def windows(self, split: str, *, stride: int | None) -> WindowSet:
        import ray.train

        data = self._config["config"]["data"]
        from tsdl.data.ray_data import windows_from_shard

        return windows_from_shard(
            ray.train.get_dataset_shard(split),
            input_chunk_length=data["input_chunk_length"],
            output_chunk_length=data["output_chunk_length"],
            stride=stride,
        )

    def checkpoint(self) -> Restored | None:
        import ray.train

        # Not just Ray's registered checkpoint: after a worker died it can be epochs behind storage.
        return self._checkpoints.resume_from(ray.train.get_checkpoint())

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=checkpoint_dir_name(metrics["epoch"]))
        if checkpoint is not None:
            self._checkpoints.reported(metrics["epoch"])



class InProcessRuntime:
    """The :class:`WorkerRuntime` of a single worker in this process.

    Args:
        prepared: the run's scaled data; its train/val windows are used as they are (no copy).
        device: where the model trains.
        checkpoint: the loaded checkpoint to resume from (``tsdl.train.checkpoint_store``).
        report: called once per epoch with the metrics and the checkpoint directory.
    """

    rank = 0
    world = 1

    def __init__(
        self, prepared: PreparedData, *, device: torch.device, checkpoint: Restored | None, report: Report
    ) -> None:
        self.device = device
        self._prepared = prepared
        self._checkpoint = checkpoint
        self._report = report

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def windows(self, split: str, *, stride: int | None) -> WindowSet:
        return self._prepared.windows(split)  # train uses data.stride, val every window, as sharded

    def checkpoint(self) -> Restored | None:
        return self._checkpoint

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self._report(metrics, checkpoint_dir)
