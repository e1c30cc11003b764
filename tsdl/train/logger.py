"""The one logger interface of the training loop, and its no-op implementation.

The loop runs on every DDP rank; every rank gets a logger and all but rank 0 get the no-op one,
which keeps the loop free of ``if rank == 0`` branches and guarantees nothing is logged twice.
The MLflow implementation lives in ``tsdl.tracking.worker`` (tracking is a later stage): the
driver injects it as ``logger_factory(rank=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["MetricsLogger", "NullLogger", "worker_logger_from"]


@runtime_checkable
class MetricsLogger(Protocol):
    """What the training loop logs during a run."""

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Per-epoch scalars (train_loss, val_loss, grad_norm, lr, epoch_time_s, windows_per_s)."""
        ...

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Per-step scalars, e.g. ``grad_norm/<layer>`` every log_every_n_steps (may be buffered)."""
        ...

    def flush(self) -> None:
        """Write what is buffered; the loop calls it before it returns or raises."""
        ...


class NullLogger:
    """Logs nothing: the logger of ranks != 0 and of untracked runs."""

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        del epoch, metrics

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        del step, metrics

    def flush(self) -> None:
        pass


def worker_logger_from(loop_config: dict[str, Any], rank: int) -> MetricsLogger:
    """The injected logger factory, called with this worker's rank (it is a no-op off rank 0)."""
    factory: Callable[..., MetricsLogger] | None = loop_config.get("logger_factory")
    return factory(rank=rank) if factory is not None else NullLogger()
