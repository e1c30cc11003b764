"""Epoch hooks: picklable ``hook(epoch, rank)`` callables run by every worker at each epoch start.

They live in the package (not in tests) because Ray workers must be able to import them. Besides
tests, `FailOnce` is a chaos drill for a cluster: prove that a run survives losing a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["EpochLog", "FailOnce"]


@dataclass(frozen=True)
class EpochLog:
    """Appends ``<epoch>`` for every epoch started on rank 0 to a file (on a shared filesystem)."""

    path: str

    def __call__(self, epoch: int, rank: int) -> None:
        if rank == 0:
            with Path(self.path).open("a") as f:
                f.write(f"{epoch}\n")


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
