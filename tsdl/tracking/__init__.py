"""Tracking: MLflow runs (driver side), worker loggers, system info, manifests and plots.

mlflow and matplotlib are imported inside the functions that use them.
"""

from tsdl.tracking.mlflow_run import MlflowRun, RunStatus, dataset_name, experiment_name
from tsdl.tracking.store import DEFAULT_TRACKING_URI, connect, resolve_tracking_uri
from tsdl.tracking.system import git_commit, package_versions, system_info
from tsdl.tracking.worker import EpochLogger, NullLogger, worker_logger

__all__ = [
    "DEFAULT_TRACKING_URI",
    "EpochLogger",
    "MlflowRun",
    "NullLogger",
    "RunStatus",
    "connect",
    "dataset_name",
    "experiment_name",
    "git_commit",
    "package_versions",
    "resolve_tracking_uri",
    "system_info",
    "worker_logger",
]
