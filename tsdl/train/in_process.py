"""The in-process path: one worker trains in the calling process, no Ray Train worker group.

Whether a run takes it is :func:`trains_in_process`; :func:`run_in_process` runs the loop once
(a single-worker Tune trial, in its trial actor), :func:`fit_in_process` runs it in the driver of
a single-worker ``tsdl train`` on this machine, with restarts and local checkpoints.

A single-worker Tune trial spends well over 90% of its wall time starting a ``TorchTrainer``
(controller actor, worker actor, placement group, a Ray Data pipeline per dataset) for a few
seconds of training (docs/benchmarks.md). With one worker there is no DDP to set up, so the
trial runs :func:`tsdl.train.worker.run_worker` itself on the windows of the study's prepared
data, which Tune already shares through the object store. Checkpoints and resumption go through
the caller's ``report``/``checkpoint`` (Tune's, for a trial), so fault tolerance is unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tsdl.config import TsdlConfig
from tsdl.train.checkpoint_store import CheckpointStore, Restored
from tsdl.train.runtime import InProcessRuntime, Report
from tsdl.train.seeding import set_deterministic
from tsdl.train.threads import torch_threads
from tsdl.train.worker import run_worker

if TYPE_CHECKING:
    from tsdl.data import PreparedData

__all__ = [
    "InProcessResult",
    "LocalCheckpoint",
    "fit_in_process",
    "run_in_process",
    "trains_in_process",
]

_log = logging.getLogger(__name__)


def run_in_process(
    loop_config: dict[str, Any],
    prepared: PreparedData,
    *,
    checkpoint: Restored | None,
    report: Report,
    use_gpu: bool,
) -> None:
    """Run the training loop of ``loop_config`` (see ``tsdl.train.trainer.loop_config``) here."""
    device = torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")
    run_worker(loop_config, InProcessRuntime(prepared, device=device, checkpoint=checkpoint, report=report))


@dataclass(frozen=True)
class InProcessResult:
    """What :func:`fit_in_process` leaves: the run's latest checkpoint (as ``TorchTrainer.fit`` does)."""

    checkpoint: LocalCheckpoint | None


@dataclass(frozen=True)
class LocalCheckpoint:
    """A checkpoint directory on this machine, with the two methods the callers use."""

    path: str

    def to_directory(self, path: str) -> str:
        shutil.copytree(self.path, path, dirs_exist_ok=True)
        return path

    @contextlib.contextmanager
    def as_directory(self) -> Iterator[str]:
        yield self.path


def trains_in_process(config: TsdlConfig, address: str | None = None, *, in_trial: bool = False) -> bool:
    """Whether the run trains its single worker in this process instead of a TorchTrainer.

    A Tune trial (``in_trial``) does whenever it has one worker: its actor already holds the
    worker's CPU/GPU bundle, on a cluster too. ``tsdl train`` does only for one worker on this
    machine with local storage: a cluster (``--address``, ``RAY_ADDRESS``) trains on its
    workers, several workers need DDP, and URI storage goes through Ray's storage layer.
    """
    res = config.resources
    if in_trial:
        return res.num_workers == 1
    local = address is None and res.address is None and not os.environ.get("RAY_ADDRESS")
    return local and res.num_workers == 1 and not res.use_gpu and "://" not in res.storage_path


def fit_in_process(
    loop_config: dict[str, Any], prepared: PreparedData, *, run_dir: Path, max_failures: int
) -> InProcessResult:
    """Train here, checkpointing under ``run_dir``; restart from the newest complete checkpoint on failure.

    Mirrors Ray Train's ``FailureConfig(max_failures)`` (-1: unlimited) and its resume: a run
    directory that already holds a checkpoint continues from it. tsdl's own errors (bad config
    or data, a non-finite loss) are deterministic and fail at once instead of being retried, and
    so does a ``MemoryError``: a retry in the same process would start from the same heap.
    Checkpoints go through the run's :class:`~tsdl.train.checkpoint_store.CheckpointStore`,
    which keeps only the newest. Torch gets the config's thread count (every CPU this process
    may use when unset, see ``tsdl.train.threads``).
    """
    from tsdl.errors import TsdlError

    config = TsdlConfig.model_validate(loop_config["config"])
    store = CheckpointStore.at(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    store.clean_staging()  # a save cut short by a kill in an earlier attempt
    loop_config = {**loop_config, "threads": torch_threads(config, in_process=True)}
    failures = 0
    with _process_settings():
        while True:
            try:
                run_in_process(
                    loop_config,
                    prepared,
                    checkpoint=store.choose(),
                    report=functools.partial(_persist, store),
                    use_gpu=False,
                )
                break
            except (TsdlError, MemoryError):
                raise
            except Exception as exc:
                failures += 1
                if 0 <= max_failures < failures:
                    raise
                _log.warning("training failed (%s); restart %d from the last checkpoint", exc, failures)
    newest = store.newest_complete()
    return InProcessResult(LocalCheckpoint(newest) if newest is not None else None)


def _persist(store: CheckpointStore, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
    """Save the epoch's checkpoint, then delete every older one (the newest holds last and best)."""
    if checkpoint_dir is None:
        return
    saved = store.save(Path(checkpoint_dir), int(metrics["epoch"]))
    store.prune(saved)


@contextlib.contextmanager
def _process_settings() -> Iterator[None]:
    """Training sets torch's thread count and determinism; the driver gets its own back after."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        set_deterministic(deterministic)
