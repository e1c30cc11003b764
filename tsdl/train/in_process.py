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
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tsdl.config import TsdlConfig
from tsdl.train.checkpointing import META_FILE, checkpoint_dir_name
from tsdl.train.runtime import InProcessRuntime, Report
from tsdl.train.seeding import set_deterministic
from tsdl.train.worker import run_worker

if TYPE_CHECKING:
    from tsdl.data import PreparedData

__all__ = [
    "InProcessResult",
    "LocalCheckpoint",
    "fit_in_process",
    "latest_checkpoint",
    "run_in_process",
    "trains_in_process",
]

_log = logging.getLogger(__name__)

def run_in_process(
    loop_config: dict[str, Any], prepared: PreparedData, *, checkpoint: Any | None, report: Report, use_gpu: bool
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
    """Train here on every core, checkpointing under ``run_dir``; restart from the latest checkpoint on failure.

    Mirrors Ray Train's ``FailureConfig(max_failures)`` (-1: unlimited) and its resume: a run
    directory that already holds a checkpoint continues from it. tsdl's own errors (bad config
    or data, a non-finite loss) are deterministic and fail at once instead of being retried.
    """
    from tsdl.errors import TsdlError

    run_dir.mkdir(parents=True, exist_ok=True)
    # The driver's run is the only training on this machine: all its cores, like a plain loop.
    loop_config = {**loop_config, "threads": len(os.sched_getaffinity(0))}
    failures = 0
    with _process_settings():
        while True:
            latest = latest_checkpoint(run_dir)
            try:
                run_in_process(
                    loop_config,
                    prepared,
                    checkpoint=latest,
                    report=functools.partial(_persist, run_dir),
                    use_gpu=False,
                )
                break
            except TsdlError:
                raise
            except Exception as exc:
                failures += 1
                if 0 <= max_failures < failures:
                    raise
                _log.warning("training failed (%s); restart %d from the last checkpoint", exc, failures)
    return InProcessResult(latest_checkpoint(run_dir))


def latest_checkpoint(run_dir: Path) -> LocalCheckpoint | None:
    """The checkpoint of the highest epoch under ``run_dir`` (this module's or Ray Train's)."""
    found = []
    for meta in run_dir.glob(f"checkpoint_*/{META_FILE}"):
        epoch = json.loads(meta.read_text()).get("epoch", 0)
        found.append((epoch, meta.stat().st_mtime, meta.parent))
    return LocalCheckpoint(str(max(found)[2])) if found else None


def _persist(run_dir: Path, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
    """Keep only the newest checkpoint; it appears under its final name complete or not at all."""
    if checkpoint_dir is None:
        return
    final = run_dir / checkpoint_dir_name(int(metrics["epoch"]))
    staging = run_dir / f".{final.name}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(checkpoint_dir, staging)
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    for old in run_dir.glob("checkpoint_*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _process_settings() -> Iterator[None]:
    """Training sets torch's thread count and determinism; the driver gets its own back after."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        set_deterministic(deterministic)
