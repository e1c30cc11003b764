"""Where runs are stored, and a fail-fast connection to that store.

MLflow 3.17 refuses the plain file store (``./mlruns``) unless opted in, and its own default is
``sqlite:///mlflow.db``; tsdl uses that SQLite store too, with artifacts in ``mlruns/`` beside
the database file, so a laptop run needs no server and all of it lives in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from tsdl.config.tracking import TrackingConfig
from tsdl.errors import TrackingError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "DEFAULT_TRACKING_URI",
    "artifact_root_for",
    "connect",
    "quick_http",
    "resolve_tracking_uri",
    "tracking_uri_source",
]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
"""The local store used when neither the config nor $MLFLOW_TRACKING_URI names one."""

PROBE_TIMEOUTS_S = (5, 10, 20)
"""The first request's tries, each its timeout. A server that does not answer within 5 s may be
busy rather than gone: a fresh MLflow server's first search took longer than that on a loaded
Kubernetes node (cluster e2e, 2026-12-06), and the job failed for it. A refused connection or an
unknown host is final at once."""


def resolve_tracking_uri(config: TrackingConfig, explicit: str | None = None) -> str:
    """The tracking URI to use (see `tracking_uri_source` for the order)."""
    return tracking_uri_source(config, explicit)[0]


def tracking_uri_source(config: TrackingConfig, explicit: str | None = None) -> tuple[str, str]:
    """``(uri, where it came from)``: ``explicit`` (a CLI flag), else $MLFLOW_TRACKING_URI, else
    ``tracking.tracking_uri``, else the local SQLite store in the working directory.

    The environment beats the config file so that a deployment (a KubeRay pod gets
    MLFLOW_TRACKING_URI from the chart) overrides a laptop-local URI left in a config. Local
    paths are made absolute against the current directory, so Ray workers (which run in another
    working directory) write to the same store as the driver.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if explicit:
        return _absolute(explicit), "--tracking-uri"
    if env:
        return _absolute(env), "$MLFLOW_TRACKING_URI"
    if config.tracking_uri:
        return _absolute(config.tracking_uri), "tracking.tracking_uri"
    return _absolute(DEFAULT_TRACKING_URI), "default local store"


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
            after one quick try (up to three for a server that does not answer, see
            PROBE_TIMEOUTS_S) instead of MLflow's minutes of retries.
    """
    from mlflow import MlflowClient

    # Artifact download bars would interleave with tsdl's own output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for timeout in PROBE_TIMEOUTS_S:
        try:
            with quick_http(timeout):
                client = MlflowClient(tracking_uri=tracking_uri)
                client.search_experiments(max_results=1)
            return client
        except Exception as exc:  # any failure here means "store unusable"
            reason = _reason(exc)
            if reason != "timed out":
                break
    else:  # every try timed out
        tries, waited = len(PROBE_TIMEOUTS_S), sum(PROBE_TIMEOUTS_S)
        reason = f"timed out: no answer to {tries} requests in {waited} s"
    raise _unusable(tracking_uri, reason)


def _unusable(tracking_uri: str, reason: str) -> TrackingError:
    """The one-line error for a store that did not answer ``connect``'s request."""
    what = "server" if tracking_uri.startswith(("http://", "https://")) else "store"
    if any(code in reason for code in ("401", "403", "Unauthorized", "Forbidden", "PERMISSION_DENIED")):
        return TrackingError(
            f"MLflow tracking server {tracking_uri} refused access ({reason})",
            hint="set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN, "
            "or add this host to the server's --allowed-hosts",
        )
    return TrackingError(
        f"MLflow tracking {what} {tracking_uri} is unreachable ({reason})",
        hint="start it, or set MLFLOW_TRACKING_URI (or tracking.tracking_uri) to a reachable "
        "store; unset both to log to the local store sqlite:///mlflow.db",
    )


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


def _reason(exc: BaseException) -> str:
    """The useful part of an MLflow/urllib3 failure: one line, without retry bookkeeping."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for marker in ("Connection refused", "Name or service not known", "timed out", "Temporary failure in name resolution"):
        if marker in text:
            return marker.lower()
    return text[:300]


def quick_http(timeout_s: float = 5) -> AbstractContextManager[None]:
    """Temporarily make MLflow's HTTP client give up after one try of ``timeout_s``."""
    return http_limits(
        {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": f"{timeout_s:g}"}
    )


@contextmanager
def http_limits(env: Mapping[str, str]) -> Iterator[None]:
    """MLflow's HTTP client settings (retries, timeouts: environment variables it reads on each
    request) set to ``env`` for the block, and the caller's own restored after it."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
