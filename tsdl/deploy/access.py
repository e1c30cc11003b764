"""What the pods of a RayJob can reach: the tracking server, the results storage, the dataset.

A config written on a laptop names laptop things: `sqlite:///mlflow.db`, `../data/ETTh1.csv`.
In a pod those are a read-only `/home/ray` and a file that is not there, and the failure would
show only after the cluster started (or, for MLflow, after the whole study). This module decides,
before anything is created, what the pods use instead, and refuses what they cannot reach, with
the fix in the message. `tsdl render`/`tsdl submit` and the chart (`helm/tsdl/templates`) apply
the same rules; tests/deploy keeps them equal.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from tsdl.config import TsdlConfig
from tsdl.config.deploy import DEFAULT_RELEASE
from tsdl.errors import DeployError

__all__ = [
    "PREREQUISITES_TRACKING_URI",
    "check_data_path",
    "check_storage",
    "for_pods",
    "pod_tracking_uri",
    "tracking_note",
    "with_worker_gpus",
    "worker_gpus",
]

PREREQUISITES_TRACKING_URI = f"http://{DEFAULT_RELEASE}-mlflow:5000"
"""The MLflow server of the namespace's prerequisites (`helm install tsdl helm/tsdl --set
job.enabled=false`), by its Service's short name: pods resolve it in their own namespace."""

_SERVER = re.compile(r"^(https?|databricks)(://|$)")
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://")


def pod_tracking_uri(config: TsdlConfig) -> str | None:
    """The MLflow URI every pod gets: deploy.mlflow.tracking_uri, else a server named by
    tracking.tracking_uri, else the prerequisites' server. None when tracking is off."""
    if not config.tracking.enabled:
        return None
    if config.deploy.mlflow.tracking_uri:
        return config.deploy.mlflow.tracking_uri
    own = config.tracking.tracking_uri
    if own and _SERVER.match(own):
        return own
    return PREREQUISITES_TRACKING_URI


def tracking_note(config: TsdlConfig) -> str | None:
    """One line for stderr when the pods' tracking URI replaces the config's own."""
    own = config.tracking.tracking_uri
    pods = pod_tracking_uri(config)
    if own is None or pods is None or own == pods:
        return None
    why = "is local to this machine" if not _SERVER.match(own) else "is not the deploy one"
    return (
        f"note: tracking.tracking_uri {own} {why}; the pods log to {pods} "
        "(deploy.mlflow.tracking_uri)"
    )


def for_pods(config: TsdlConfig) -> TsdlConfig:
    """The config as the pods see it: tracking.tracking_uri and deploy.mlflow.tracking_uri are
    the pods' URI, so the mounted config and MLFLOW_TRACKING_URI agree.

    Raises:
        DeployError: data.path names nothing the pods can read (see `check_data_path`).
    """
    check_data_path(config)
    check_storage(config)
    config = with_worker_gpus(config)
    uri = pod_tracking_uri(config)
    if uri is None:
        return config
    tracking = config.tracking.model_copy(
        update={"tracking_uri": uri if config.tracking.tracking_uri is not None else None}
    )
    mlflow = config.deploy.mlflow.model_copy(update={"tracking_uri": uri})
    deploy = config.deploy.model_copy(update={"mlflow": mlflow})
    return config.model_copy(update={"tracking": tracking, "deploy": deploy})


def worker_gpus(config: TsdlConfig) -> int:
    """GPUs per worker pod: `deploy.worker.gpu`, else 1 when `resources.use_gpu`, else 0."""
    gpu = config.deploy.worker.gpu
    return gpu if gpu is not None else int(config.resources.use_gpu)


def with_worker_gpus(config: TsdlConfig) -> TsdlConfig:
    """The config with `deploy.worker.gpu` resolved (`worker_gpus`), as the builders need it."""
    if config.deploy.worker.gpu is not None:
        return config
    worker = config.deploy.worker.model_copy(update={"gpu": worker_gpus(config)})
    return config.model_copy(update={"deploy": config.deploy.model_copy(update={"worker": worker})})


def check_data_path(config: TsdlConfig) -> None:
    """Refuse a data.path the pods cannot read: relative, or a laptop path that no data volume
    or image provides. Object-store URIs, synthetic data and named datasets pass.

    Raises:
        DeployError: naming the path and the three ways to get data into the pods.
    """
    path = config.data.path
    if path is None:
        return
    text = str(path)
    if _URI.match(text):
        return
    data = config.deploy.data
    posix = PurePosixPath(text)
    if posix.is_absolute():
        if data.in_image:
            return
        if data.claim_name and posix.is_relative_to(data.mount_path):
            return
    where = (
        f"is not under the data volume's mount path {data.mount_path}"
        if data.claim_name and posix.is_absolute()
        else "is a path on this machine, which the pods cannot read"
    )
    raise DeployError(
        f"data.path {text} {where}",
        hint=(
            "use an object-store URI (data.path=s3://BUCKET/file.csv), a data volume "
            f"(deploy.data.claim_name=PVC and data.path={data.mount_path}/file.csv), or a file "
            "baked into the image (data.path=/abs/path and deploy.data.in_image=true)"
        ),
    )


def check_storage(config: TsdlConfig) -> None:
    """Refuse a multi-node job on the namespace's default claim, which is ReadWriteOnce (the
    prerequisites create it on the default StorageClass, so it serves one node).

    Raises:
        DeployError: listing the three ways to give the pods shared storage.
    """
    deploy = config.deploy
    if deploy.storage.uri or deploy.storage.claim_name or deploy.worker.max_replicas <= 1:
        return
    raise DeployError(
        f"deploy.worker: {deploy.worker.max_replicas} worker pods span nodes, but the namespace's "
        f"claim {DEFAULT_RELEASE}-results is ReadWriteOnce (one node)",
        hint=(
            "use an object store (--storage s3://BUCKET/PREFIX or deploy.storage.uri), an existing "
            "ReadWriteMany claim (--storage CLAIM or deploy.storage.claim_name), or create one with "
            "the chart (storage.storageClassName=CLASS, storage.accessModes={ReadWriteMany})"
        ),
    )
