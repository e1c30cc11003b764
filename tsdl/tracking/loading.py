"""Read a finished run back: the config, manifest and metrics that --reproduce, evaluate and
predict start from."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tsdl.config.loader import parse_config
from tsdl.config.root import TsdlConfig
from tsdl.config.tracking import TrackingConfig
from tsdl.errors import TrackingError
from tsdl.tracking.manifest import MANIFEST_ARTIFACT
from tsdl.tracking.mlflow_run import get_run
from tsdl.tracking.store import connect, resolve_tracking_uri

__all__ = ["CHECKPOINT_ARTIFACT", "download_checkpoint", "load_run"]

CHECKPOINT_ARTIFACT = "checkpoint"
"""Artifact directory of the best checkpoint (``MlflowRun.log_artifact_dir(path, "checkpoint")``)."""


def load_run(run_id: str, tracking_uri: str) -> tuple[TsdlConfig, dict[str, Any], dict[str, float]]:
    """The config, manifest and latest metric values of a run logged by ``MlflowRun``.

    Args:
        run_id: the MLflow run id.
        tracking_uri: the store it lives in (``resolve_tracking_uri(config.tracking)``).

    Returns:
        ``(config, manifest, metrics)``; ``manifest`` is ``{}`` for a run that never
        logged ``manifest.json`` (e.g. one that failed before training ended).

    Raises:
        TrackingError: the store is unreachable, the run does not exist or has no config.yaml.
        ConfigError: its config.yaml no longer validates (written by an incompatible tsdl).
    """
    client = connect(tracking_uri)
    run = get_run(client, run_id, tracking_uri)
    with tempfile.TemporaryDirectory(prefix="tsdl-run-") as tmp:
        config_text = _artifact_text(client, run_id, "config.yaml", tmp)
        if config_text is None:
            raise TrackingError(
                f"MLflow run {run_id} in {tracking_uri} has no config.yaml artifact",
                hint="pass a run created by tsdl (`tsdl train`), not a parent/study run",
            )
        manifest_text = _artifact_text(client, run_id, MANIFEST_ARTIFACT, tmp)
    config = parse_config(yaml.safe_load(config_text) or {}, source=f"run {run_id}: config.yaml")
    manifest = json.loads(manifest_text) if manifest_text is not None else {}
    return config, manifest, dict(run.data.metrics)


def download_checkpoint(
    run_id: str, tracking_uri: str | None = None, *, dst: str | Path | None = None
) -> Path:
    """Fetch a run's best-checkpoint directory, for ``tsdl evaluate/predict --run-id``.

    Args:
        run_id: the MLflow run id.
        tracking_uri: its store; None resolves it like training does ($MLFLOW_TRACKING_URI,
            else the local ``sqlite:///mlflow.db``).
        dst: local directory to download into; None makes a fresh temporary one.

    Returns:
        The local checkpoint directory.

    Raises:
        TrackingError: unreachable store, unknown run, or a run logged without a checkpoint.
    """
    uri = tracking_uri or resolve_tracking_uri(TrackingConfig())
    client = connect(uri)
    get_run(client, run_id, uri)
    if CHECKPOINT_ARTIFACT not in {info.path for info in client.list_artifacts(run_id)}:
        raise TrackingError(
            f"MLflow run {run_id} in {uri} has no '{CHECKPOINT_ARTIFACT}' artifact",
            hint="train with tracking.log_checkpoints=true, or pass --checkpoint DIR instead",
        )
    target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="tsdl-ckpt-"))
    target.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, CHECKPOINT_ARTIFACT, str(target)))


def _artifact_text(client: Any, run_id: str, name: str, tmp: str) -> str | None:
    """One top-level artifact's text, or None when the run has no such artifact."""
    if name not in {info.path for info in client.list_artifacts(run_id)}:
        return None
    return Path(client.download_artifacts(run_id, name, tmp)).read_text()
