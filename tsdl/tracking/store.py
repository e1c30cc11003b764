"""Where runs are stored, and a fail-fast connection to that store.

MLflow 3.17 refuses the plain file store (``./mlruns``) unless opted in, and its own default is
``sqlite:///mlflow.db``; tsdl uses that SQLite store too, with artifacts in ``mlruns/`` beside
the database file, so a laptop run needs no server and all of it lives in one place.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tsdl.config.tracking import TrackingConfig
from tsdl.errors import TrackingError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mlflow import MlflowClient

__all__ = ["DEFAULT_TRACKING_URI", "artifact_root_for", "connect", "resolve_tracking_uri"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""The local store used when neither the config nor $MLFLOW_TRACKING_URI names one."""

_PROBE_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


def resolve_tracking_uri(config: TrackingConfig) -> str:
    """The tracking URI to use: config, else $MLFLOW_TRACKING_URI, else a local SQLite store.

    Local paths are made absolute against the current directory, so Ray workers (which run in
    another working directory) write to the same store as the driver.
    """
    uri = config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    return _absolute(uri)


def artifact_root_for(tracking_uri: str, experiment_name: str) -> str | None:
    """Artifact location for a new experiment: ``<db dir>/mlruns/<name>`` for a SQLite store.

    None (the server's or store's own default) for every other store.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db.parent / "mlruns" / experiment_name).as_uri()


def connect(tracking_uri: str) -> MlflowClient:
    """An MlflowClient on ``tracking_uri`` that has answered one request.

    Raises:
        TrackingError: the store cannot be reached or opened; names the URI and the fix,
            after one quick try instead of MLflow's minutes of retries.
    """
    from mlflow import MlflowClient

    # Artifact download bars would interleave with tsdl's own output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        with _quick_http():
            client = MlflowClient(tracking_uri=tracking_uri)
            client.search_experiments(max_results=1)
    except Exception as exc:  # any failure here means "store unusable"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(
            f"cannot reach the MLflow tracking store {tracking_uri}: {reason[:300]}",
            hint="start the tracking server, fix tracking.tracking_uri / $MLFLOW_TRACKING_URI, "
            "or unset both to log to the local store sqlite:///mlflow.db",
        ) from None
    return client


def _absolute(uri: str) -> str:
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri.removeprefix("sqlite:///")
        if path != ":memory:":
            return "sqlite:///" + str(Path(path).resolve())
    parsed = urlparse(uri)
    if parsed.scheme == "" or (parsed.scheme == "file" and not parsed.netloc):
        path = parsed.path if parsed.scheme else uri
        return Path(path).resolve().as_uri()
    return uri


@contextmanager
def _quick_http() -> Iterator[None]:
    """Temporarily make MLflow's HTTP client give up after one short try."""
    saved = {key: os.environ.get(key) for key in _PROBE_ENV}
    os.environ.update(_PROBE_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
