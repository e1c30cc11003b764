"""The MLflow logger a training worker holds on rank 0 of a tracked run (``tsdl.train.logger``).

Ray Train runs the same loop on every DDP rank; handing every rank a logger and making all but
rank 0 inert keeps the loop free of ``if rank == 0`` branches and guarantees nothing is logged
twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from tsdl.interrupts import deferred_interrupts
from tsdl.tracking.store import http_limits
from tsdl.train.logger import MetricsLogger, NullLogger

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["log_metrics", "log_metrics_at", "worker_logger"]

_MAX_PENDING_STEPS = 200
"""Step rows buffered before a request is sent even mid-epoch."""

_MAX_KEPT_ROWS = 10_000
"""Rows kept for the next write while the store is unreachable (the oldest are dropped)."""

TRAINING_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
"""MLflow HTTP settings for writes during training: at most 3 tries of 5 s plus 3 s of backoff,
instead of MLflow's default 7 retries with exponential backoff and 120 s timeouts (minutes)."""

_log = logging.getLogger(__name__)


class _ClientLogger:
    """Logs metrics of an existing run through its own MlflowClient (no global active run).

    Step metrics are buffered and sent with the epoch's metrics in one request: an MLflow
    round-trip every ``log_every_n_steps`` would cost more than the training steps between them.
    The buffer is flushed by the loop before it returns or raises (``flush``), so every row is
    written before the driver marks the run FAILED or KILLED.

    Writes during training retry a bounded number of times (``TRAINING_HTTP_ENV``); one that
    still fails is a warning, and its rows go with the next write: an MLflow outage must not
    cost the finished epochs, and must not hold the training thread for minutes.
    """

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self._client = client
        self._run_id = run_id
        self._pending: list[tuple[int, Mapping[str, float]]] = []
        self._warned = False

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._pending.append((epoch, dict(metrics)))
        self.flush()

    def log_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self._pending.append((step, dict(metrics)))
        if len(self._pending) >= _MAX_PENDING_STEPS:
            self.flush()

    def flush(self) -> None:
        """Send the buffered rows now; on failure keep them for the next write (one warning)."""
        if not self._pending:
            return
        try:
            log_metrics_at(self._client, self._run_id, self._pending, bounded=True)
        except Exception as exc:  # MlflowException, requests' errors: the store is unreachable
            if not self._warned:
                _log.warning("MLflow metrics write failed, retried with the next one: %s", str(exc).splitlines()[0][:200])
                self._warned = True
            if len(self._pending) > _MAX_KEPT_ROWS:
                self._pending = self._pending[-_MAX_KEPT_ROWS:]
            return
        self._pending = []


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
    client: MlflowClient, run_id: str, rows: Sequence[tuple[int, Mapping[str, float]]], *, bounded: bool = False
) -> None:
    """Log ``(step, metrics)`` rows in as few requests as MLflow allows (1000 metrics each).

    Ctrl-C/SIGTERM are held only while a local store (sqlite, files) commits; ``bounded``
    caps an HTTP store's retries and timeout (``TRAINING_HTTP_ENV``) for writes during training.
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(key=key, value=_as_float(key, value), timestamp=now, step=int(step))
        for step, metrics in rows
        for key, value in metrics.items()
    ]
    local = is_local_store(str(client.tracking_uri))
    # A Ctrl-C mid-commit would cut a local store's transaction in half; a server commits whole.
    with deferred_interrupts() if local else contextlib.nullcontext():
        with bounded_http() if bounded and not local else contextlib.nullcontext():
            for start in range(0, len(batch), 1000):
                client.log_batch(run_id, metrics=batch[start : start + 1000])


def is_local_store(tracking_uri: str) -> bool:
    """Whether MLflow writes ``tracking_uri`` in this process (sqlite, a file store)."""
    scheme = tracking_uri.split("://", 1)[0] if "://" in tracking_uri else ""
    return scheme in ("", "file", "sqlite")


def bounded_http() -> contextlib.AbstractContextManager[None]:
    """MLflow's HTTP retries and timeout capped for the block (``TRAINING_HTTP_ENV``)."""
    return http_limits(TRAINING_HTTP_ENV)


def _as_float(key: str, value: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r} must be a number, but got {value!r}") from None
