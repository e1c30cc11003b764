"""Kubernetes deployment as a KubeRay RayJob: image, cluster shape, storage, tracking, lifecycle.

Every default here equals the same key (camelCased) in `helm/tsdl/values.yaml`; a test keeps them
in agreement, and `tsdl.deploy.chart_values` turns this section into Helm values.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tsdl.config.base import StrictModel

__all__ = [
    "DataVolumeConfig",
    "DeployConfig",
    "GangConfig",
    "HeadConfig",
    "MlflowDeployConfig",
    "NetworkPolicyConfig",
    "StorageConfig",
    "SubmitterConfig",
    "WorkerConfig",
]

# Kubernetes resource quantity, e.g. "500m", "4", "16Gi".
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
# RFC 1123 label (names of ServiceAccounts, PVCs, Secrets, queues, namespaces).
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# RFC 1035 label: RayJob names must start with a letter, because KubeRay derives Service names
# from them (`<name>-head-svc`) and Service names are DNS-1035 labels.
_DNS_1035 = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# Container image reference: [registry[:port]/]path[:tag][@sha256:digest], lowercase path.
IMAGE_PATTERN = (
    r"^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
DEFAULT_RELEASE = "tsdl"
"""Release that holds a namespace's shared prerequisites (`helm install tsdl ... job.enabled=false`)."""


def _quantity_to_str(value: Any) -> Any:
    """YAML reads `cpu: 4` as an int; Kubernetes quantities are strings."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class HeadConfig(StrictModel):
    """The Ray head pod: runs the driver (`tsdl tune`/`tsdl train`), no training work by default."""

    cpu: str = Field("2", pattern=_QUANTITY)
    """CPU request and limit of the head container."""
    memory: str = Field("8Gi", pattern=_QUANTITY)
    """Memory request and limit of the head container."""
    ray_start_params: dict[str, str] = Field(
        default_factory=lambda: {"num-cpus": "0", "num-gpus": "0"}
    )
    """`ray start` flags, merged over these defaults: num-cpus=0 keeps trials off the head so it
    stays responsive; num-gpus=0 stops a head on a GPU node advertising GPUs it was not given."""
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] = Field(default_factory=dict)
    shm_size: str | None = Field(None, pattern=_QUANTITY)
    """/dev/shm of the head; unset uses deploy.shm_size, else sizes it from the head's object store."""

    _str_quantities = field_validator("cpu", "memory", "shm_size", mode="before")(_quantity_to_str)


class WorkerConfig(StrictModel):
    """The worker group that runs trials and Ray Train workers (GPU nodes in production)."""

    group_name: str = Field("gpu", pattern=_DNS_LABEL, max_length=40)
    replicas: int = Field(1, ge=0, le=10_000)
    """Worker pods at start."""
    min_replicas: int = Field(1, ge=0, le=10_000)
    """Lower bound for the autoscaler (used when autoscaling is on)."""
    max_replicas: int = Field(1, ge=0, le=10_000)
    """Upper bound for the autoscaler; without autoscaling it should equal replicas."""
    cpu: str = Field("8", pattern=_QUANTITY)
    memory: str = Field("32Gi", pattern=_QUANTITY)
    gpu: int | None = Field(None, ge=0, le=64)
    """nvidia.com/gpu per worker pod (0 for CPU-only workers); unset follows resources.use_gpu
    (1 with GPUs, 0 without), so one switch turns GPUs on for the config and the pods."""
    ray_start_params: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    )
    """Default tolerates the taint GPU node pools usually carry."""
    affinity: dict[str, Any] = Field(default_factory=dict)
    shm_size: str | None = Field(None, pattern=_QUANTITY)
    """/dev/shm of each worker pod; unset uses deploy.shm_size, else sizes it from the worker's
    object store."""

    _str_quantities = field_validator("cpu", "memory", "shm_size", mode="before")(_quantity_to_str)

    @model_validator(mode="after")
    def _bounds(self) -> WorkerConfig:
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                "worker replicas must satisfy min_replicas <= replicas <= max_replicas, got "
                f"{self.min_replicas} <= {self.replicas} <= {self.max_replicas}"
            )
        return self


# Object-store URIs end up in the RayJob's entrypoint, which KubeRay's submitter runs through
# `bash -c` and Ray's JobSupervisor through `sh -c` again: only characters no shell treats
# specially, so no quoting can be lost on the way. Endpoints go in AWS_ENDPOINT_URL instead of
# `?endpoint_override=...&scheme=...` query strings.
SHELL_SAFE_URI = r"^[a-z][a-z0-9+.-]*://[A-Za-z0-9_@%+=:,./-]+$"


class StorageConfig(StrictModel):
    """Where Ray writes results and checkpoints: a shared PVC, or an object-store URI."""

    uri: str | None = Field(None, pattern=SHELL_SAFE_URI)
    """s3://, gs:// or abfs:// URI (recommended across nodes); when set, no volume is mounted.
    Credentials and endpoint come from the pods' env (deploy.mlflow.credentials_secret)."""
    claim_name: str | None = Field(None, pattern=_DNS_LABEL)
    """PVC mounted into every Ray pod when uri is unset; unset means `tsdl-results`, the claim of
    the namespace's prerequisites (the chart names it `<release>-results`)."""
    mount_path: str = Field("/mnt/tsdl-results", pattern=r"^/[A-Za-z0-9_@%+=:,./-]*$")
    access_modes: list[Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod", "ReadOnlyMany"]] = Field(
        default_factory=lambda: ["ReadWriteOnce"], min_length=1
    )
    """Access modes of the claim (`tsdl submit` reads the real claim's). Without ReadWriteMany the
    claim attaches to one node, so the head is placed on the worker pod's node."""


class DataVolumeConfig(StrictModel):
    """How the driver reads `data.path` in the pods, besides object-store URIs."""

    claim_name: str | None = Field(None, pattern=_DNS_LABEL)
    """Existing PVC holding datasets, mounted read-only at mount_path in every Ray pod."""
    mount_path: str = Field("/data", pattern=r"^/[A-Za-z0-9_@%+=:,./-]*$")
    """Where the data claim is mounted: set data.path to a file under it, e.g. /data/ETTh1.csv."""
    in_image: bool = False
    """data.path is an absolute path baked into the image (a `COPY` in your Dockerfile)."""


class MlflowDeployConfig(StrictModel):
    """How Ray pods reach MLflow: the tracking URI and a Secret with its credentials."""

    tracking_uri: str | None = None
    """Exported as MLFLOW_TRACKING_URI to every pod (and written into the mounted config); unset
    means tracking.tracking_uri when that is a server (http/https/databricks), else `tsdl-mlflow`,
    the MLflow server of the namespace's prerequisites."""
    credentials_secret: str | None = Field(None, pattern=_DNS_LABEL)
    """Secret whose keys become env vars (MLFLOW_TRACKING_USERNAME/PASSWORD, AWS_* ...)."""


class GangConfig(StrictModel):
    """All-or-nothing scheduling of the Ray cluster, via Kueue or Volcano."""

    scheduler: Literal["none", "kueue", "volcano"] = "none"
    queue: str | None = Field(None, pattern=_DNS_LABEL)
    """Kueue LocalQueue or Volcano queue name (required unless scheduler is none)."""

    @model_validator(mode="after")
    def _queue_needed(self) -> GangConfig:
        if self.scheduler != "none" and self.queue is None:
            raise ValueError(f"gang scheduler '{self.scheduler}' needs a queue name")
        return self


class SubmitterConfig(StrictModel):
    """The Kubernetes Job that submits the entrypoint to the Ray cluster."""

    backoff_limit: int = Field(2, ge=0, le=100)
    """Retries of the submitter pod (not of the training run)."""
    cpu: str = Field("500m", pattern=_QUANTITY)
    memory: str = Field("1Gi", pattern=_QUANTITY)

    _str_quantities = field_validator("cpu", "memory", mode="before")(_quantity_to_str)


class NetworkPolicyConfig(StrictModel):
    """Who may open connections to the Ray pods (dashboard/job API :8265, client :10001, GCS)."""

    enabled: bool = True
    """A NetworkPolicy admitting only this job's pods and `allowed_namespaces`."""
    allowed_namespaces: list[str] = Field(default_factory=lambda: ["kuberay-system"])
    """Namespaces whose pods may connect (extras: the operator is admitted by its labels)."""
    operator_pod_labels: dict[str, str] = Field(
        default_factory=lambda: {"app.kubernetes.io/component": "kuberay-operator"}
    )
    """Pods with these labels, in any namespace, may connect: the KubeRay operator polls the
    dashboard for the job status wherever it was installed (its chart and its kustomize manifests
    both label it so); when the polls time out for 300 s KubeRay fails the job for good."""

    @field_validator("allowed_namespaces")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(_DNS_LABEL, name):
                raise ValueError(f"{name!r} is not a namespace name (RFC 1123 label)")
        return value


class DeployConfig(StrictModel):
    """A KubeRay RayJob: a CPU head, one worker group, shared storage, MLflow, teardown rules."""

    name: str | None = Field(None, pattern=_DNS_1035, max_length=47)
    """RayJob name (starts with a letter); unset derives `<experiment.name>-<mode>`. KubeRay caps
    it at 47 chars."""
    namespace: str = Field("default", pattern=_DNS_LABEL)
    image: str = Field("ghcr.io/tsdl/tsdl:0.1.0-gpu", pattern=IMAGE_PATTERN)
    """Image for the Ray workers: the `gpu` target of the repo's Dockerfile, published by
    .github/workflows/image.yml (tsdl + CUDA torch on the Ray GPU image)."""
    cpu_image: str | None = Field(None, pattern=IMAGE_PATTERN)
    """Image for the CPU-only head and submitter (the Dockerfile's `cpu` target); unset means
    `image` with its `-gpu` tag suffix replaced by `-cpu` (or `image` itself without one)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list)
    """Secrets (docker-registry type) for pulling `image` from a private registry."""
    mode: Literal["train", "tune"] = "tune"
    """Entrypoint: `tsdl train` or `tsdl tune` against the mounted config."""
    ray_version: str = Field("2.60.0", pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    service_account: str | None = Field(None, pattern=_DNS_LABEL)
    """ServiceAccount the Ray and submitter pods run as; unset means `tsdl`, the one the
    namespace's prerequisites create (the chart names it after the release)."""
    autoscaling: bool = False
    """KubeRay in-tree autoscaler between worker min_replicas and max_replicas."""
    shm_size: str | None = Field(None, pattern=_QUANTITY)
    """Size of the memory-backed /dev/shm in every Ray pod without its own `head.shm_size` /
    `worker.shm_size`; unset sizes each pod's from its Ray object store (30% of the pod's memory,
    or `object-store-memory`) plus 10%."""
    ray_auth: Literal["token", "disabled"] = "token"
    """KubeRay `authOptions.mode`: token makes the dashboard/job API and Ray client require a
    token that KubeRay generates and hands to the submitter."""
    network_policy: NetworkPolicyConfig = Field(default_factory=NetworkPolicyConfig)
    read_only_root_filesystem: bool = True
    """Containers get a read-only root; /tmp, /dev/shm and storage are writable mounts."""
    head: HeadConfig = Field(default_factory=HeadConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    data: DataVolumeConfig = Field(default_factory=DataVolumeConfig)
    mlflow: MlflowDeployConfig = Field(default_factory=MlflowDeployConfig)
    gang: GangConfig = Field(default_factory=GangConfig)
    submitter: SubmitterConfig = Field(default_factory=SubmitterConfig)
    shutdown_after_job_finishes: bool = True
    """Delete the Ray cluster when the job ends (after ttl_seconds_after_finished)."""
    ttl_seconds_after_finished: int = Field(60, ge=0, le=2_592_000)
    """Seconds the finished cluster stays before teardown. Its GPUs stay allocated meanwhile
    (and Kueue already counts them free), so keep it short; the driver log survives anyway in
    the submitter Job."""
    pre_running_deadline_seconds: int | None = Field(1800, ge=1, le=31_536_000)
    """Fail the RayJob when its cluster is not running this long after it starts initializing
    (after Kueue admits it): unschedulable pods, a missing image or claim fail instead of
    waiting forever. None means no deadline."""
    active_deadline_seconds: int | None = Field(86_400, ge=1, le=31_536_000)
    """Fail the RayJob when it runs longer than this (counted from the same start); None means
    no deadline."""
    backoff_limit: int = Field(1, ge=0, le=100)
    """New Ray clusters KubeRay tries after a failed attempt; tsdl resumes the study or run there
    (safe: the resume refuses a changed config). KubeRay 1.7 retries SubmissionFailed (the
    submitter Job ran out of retries, e.g. while a lost head was rescheduled), AppFailed and
    PreRunningDeadlineExceeded; never JobStatusCheckTimeoutExceeded (its dashboard polls failed for
    300 s, the operator's RAYJOB_STATUS_CHECK_TIMEOUT_SECONDS) nor DeadlineExceeded
    (`checkBackoffLimitAndUpdateStatusIfNeeded`, rayjob_controller.go)."""
    _str_quantities = field_validator("shm_size", mode="before")(_quantity_to_str)

    @model_validator(mode="after")
    def _kueue_without_autoscaling(self) -> DeployConfig:
        if self.gang.scheduler == "kueue" and self.autoscaling:
            raise ValueError(
                "Kueue admits a RayJob with a fixed size: set autoscaling to false "
                "or use gang.scheduler volcano"
            )
        return self
