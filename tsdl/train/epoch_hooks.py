"""Epoch hooks: picklable ``hook(epoch, rank)`` callables run by every worker at each epoch start.

They live in the package (not in tests) because Ray workers must be able to import them. Besides
tests, `FailOnce` and `KillOnce` are chaos drills for a cluster: prove that a run survives an
exception in a worker, or a worker process dying (SIGKILL, as the OOM killer does).
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EpochLog", "FailOnce", "KillOnce", "ProcessLog"]


@dataclass(frozen=True)
class EpochLog:
    """Appends ``<epoch>`` for every epoch started on rank 0 to a file (on a shared filesystem)."""

    path: str

    def __call__(self, epoch: int, rank: int) -> None:
        if rank == 0:
            with Path(self.path).open("a") as f:
                f.write(f"{epoch}\n")


@dataclass(frozen=True)
class ProcessLog:
    """Appends the id of the process that trains rank 0 (which path ran: the driver or a worker)."""

    path: str

    def __call__(self, epoch: int, rank: int) -> None:
        if rank == 0:
            with Path(self.path).open("a") as f:
                f.write(f"{os.getpid()}\n")


@dataclass(frozen=True)
class FailOnce:
    """Raises on rank 0 at the start of `epoch`, the first time only (a marker file remembers)."""

    epoch: int
    marker: str

    def __call__(self, epoch: int, rank: int) -> None:
        marker = Path(self.marker)
        if rank == 0 and epoch == self.epoch and not marker.exists():
            marker.write_text(f"failed at epoch {epoch}\n")
            raise RuntimeError(f"injected worker failure at the start of epoch {epoch}")


@dataclass(frozen=True)
class KillOnce:
    """SIGKILLs the worker process of `rank` ``delay_s`` seconds into `epoch`, the first time only.

    No exception, no cleanup: the process is gone mid-epoch, as after an OOM kill or a lost node.
    """

    epoch: int
    marker: str
    rank: int = 1
    delay_s: float = 0.2

    def __call__(self, epoch: int, rank: int) -> None:
        marker = Path(self.marker)
        if rank == self.rank and epoch == self.epoch and not marker.exists():
            marker.write_text(f"killed pid {os.getpid()} in epoch {epoch}\n")
            timer = threading.Timer(self.delay_s, os.kill, (os.getpid(), signal.SIGKILL))
            timer.daemon = True
            timer.start()
