"""The MLflow logger a training worker holds on rank 0 of a tracked run (``tsdl.train.logger``).

Ray Train runs the same loop on every DDP rank; handing every rank a logger and making all but
rank 0 inert keeps the loop free of ``if rank == 0`` branches and guarantees nothing is logged
twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tsdl.interrupts import deferred_interrupts
from tsdl.train.logger import MetricsLogger, NullLogger

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["log_metrics", "log_metrics_at", "worker_logger"]

_MAX_PENDING_STEPS = 200
"""Step rows buffered before a request is sent even mid-epoch."""


class _ClientLogger:
    """Logs metrics of an existing run through its own MlflowClient (no global active run).

    Step metrics are buffered and sent with the epoch's metrics in one request: an MLflow
    round-trip every ``log_every_n_steps`` would cost more than the training steps between them.
    """

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self._client = client
        self._run_id = run_id
        self._pending: list[tuple[int, Mapping[str, float]]] = []

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        pending, self._pending = self._pending, []
        log_metrics_at(self._client, self._run_id, [*pending, (epoch, metrics)])

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self._pending.append((step, dict(metrics)))
        if len(self._pending) >= _MAX_PENDING_STEPS:
            self.flush()

    def flush(self) -> None:
        """Send the buffered step metrics now (also when the logger is dropped, e.g. on failure)."""
        pending, self._pending = self._pending, []
        if pending:
            log_metrics_at(self._client, self._run_id, pending)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: MLflow may be gone already
            self.flush()


def worker_logger(run_id: str | None, tracking_uri: str | None, *, rank: int) -> MetricsLogger:
    """The logger for one training worker.

    Args:
        run_id: the run the driver started (``MlflowRun.run_id``); None when tracking is off.
        tracking_uri: its store (``MlflowRun.tracking_uri``); None when tracking is off.
        rank: this worker's world rank (``ray.train.get_context().get_world_rank()``).

    Returns:
        A logger writing to ``run_id`` on rank 0, a ``NullLogger`` otherwise.
    """
    if rank != 0 or run_id is None or tracking_uri is None:
        return NullLogger()
    from tsdl.tracking.store import connect

    return _ClientLogger(connect(tracking_uri), run_id)


def log_metrics(
    client: MlflowClient, run_id: str, metrics: Mapping[str, float], *, step: int
) -> None:
    """Log scalars at ``step`` in few requests; NaN is logged as NaN so a diverged run shows."""
    log_metrics_at(client, run_id, [(step, metrics)])


def log_metrics_at(
    client: MlflowClient, run_id: str, rows: Sequence[tuple[int, Mapping[str, float]]]
) -> None:
    """Log ``(step, metrics)`` rows in as few requests as MLflow allows (1000 metrics each)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(key=key, value=_as_float(key, value), timestamp=now, step=int(step))
        for step, metrics in rows
        for key, value in metrics.items()
    ]
    with deferred_interrupts():  # a Ctrl-C mid-request would cut a store transaction in half
        for start in range(0, len(batch), 1000):
            client.log_batch(run_id, metrics=batch[start : start + 1000])


def _as_float(key: str, value: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r} must be a number, but got {value!r}") from None
