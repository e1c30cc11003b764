"""MLflow tracking."""

from __future__ import annotations

from pydantic import Field

from tsdl.config.base import StrictModel
from tsdl.config.names import Name

__all__ = ["TrackingConfig"]


class TrackingConfig(StrictModel):
    """Where runs are logged; a local store needs no server."""

    enabled: bool = True
    tracking_uri: str | None = None
    """MLflow tracking URI; $MLFLOW_TRACKING_URI beats it (a pod's env wins over a laptop config);
    neither set: sqlite:///mlflow.db in the working directory."""
    experiment_name: Name | None = None
    """MLflow experiment; defaults to experiment.name. A local store keeps its artifacts under
    mlruns/<name>, so it follows tsdl.config.names.NAME_PATTERN."""
    log_checkpoints: bool = True
    """Upload the best checkpoint as an artifact."""
    log_per_layer_grad_norms: bool = False
    """Log per-layer gradient norms every log_every_n_steps (many metrics)."""
    plots: bool = Field(True)
    """Learning-curve and forecast-vs-actual PNGs."""
