"""Tracking: MLflow runs (driver side), worker loggers, system info, manifests and plots.

mlflow and matplotlib are imported inside the functions that use them.
"""

from tsdl.tracking.loading import CHECKPOINT_ARTIFACT, download_checkpoint, load_run
from tsdl.tracking.manifest import (
    IMAGE_DIGEST_ENV,
    MANIFEST_ARTIFACT,
    build_manifest,
    compare_metrics,
    file_content_hash,
    to_jsonable,
)
from tsdl.tracking.mlflow_run import (
    MlflowRun,
    RunStatus,
    dataset_name,
    experiment_name,
    probe_tracking,
)
from tsdl.tracking.plots import forecast_png, grad_norm_heatmap_png, learning_curve_png
from tsdl.tracking.store import (
    DEFAULT_TRACKING_URI,
    connect,
    resolve_tracking_uri,
    tracking_uri_source,
)
from tsdl.tracking.system import git_commit, package_versions, system_info
from tsdl.tracking.worker import worker_logger

__all__ = [
    "CHECKPOINT_ARTIFACT",
    "DEFAULT_TRACKING_URI",
    "IMAGE_DIGEST_ENV",
    "MANIFEST_ARTIFACT",
    "MlflowRun",
    "RunStatus",
    "build_manifest",
    "compare_metrics",
    "connect",
    "dataset_name",
    "download_checkpoint",
    "experiment_name",
    "file_content_hash",
    "forecast_png",
    "git_commit",
    "grad_norm_heatmap_png",
    "learning_curve_png",
    "load_run",
    "package_versions",
    "probe_tracking",
    "resolve_tracking_uri",
    "system_info",
    "to_jsonable",
    "tracking_uri_source",
    "worker_logger",
]
