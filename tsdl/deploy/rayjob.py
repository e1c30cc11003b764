"""TsdlConfig -> the KubeRay RayJob and the ConfigMap it mounts.

This is the Python twin of `helm/tsdl/templates/{rayjob,configmap}.yaml`: `tsdl render`/`tsdl submit`
build objects with it, and a test renders the chart with `chart_values(config)` and requires the
same objects, so the two paths cannot drift apart.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

import yaml

from tsdl import __version__
from tsdl.config import TsdlConfig, parse_config
from tsdl.config.deploy import DEFAULT_RELEASE, DeployConfig
from tsdl.deploy.access import for_pods, worker_gpus
from tsdl.deploy.sizing import check_shm, object_store_bytes, parse_quantity, shm_limit
from tsdl.errors import DeployError
from tsdl.tune.resources import AUTOSCALER_CAPACITY_ENV

__all__ = [
    "CONFIG_MOUNT_DIR",
    "CONFIG_PATH",
    "build_configmap",
    "build_manifests",
    "build_network_policy",
    "build_rayjob",
    "autoscaler_capacity",
    "claim_name",
    "configmap_name",
    "cpu_image",
    "entrypoint",
    "job_name",
    "service_account",
    "train_workers_per_pod",
    "with_overrides",
    "worker_gpus",
    "workload_config",
]

CONFIG_MOUNT_DIR = "/etc/tsdl"
CONFIG_PATH = f"{CONFIG_MOUNT_DIR}/config.yaml"
SUBMITTER_COMMAND = ("python", "-m", "tsdl.deploy.submitter")  # the chart renders the same
_MAX_JOB_NAME = 47  # KubeRay rejects longer RayJob names (it derives cluster/pod names from it)
_RAY_UID, _RAY_GID = 1000, 100  # the `ray` user and `users` group of the rayproject/ray images
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Merged under the user's head rayStartParams, as Helm merges values over values.yaml.
_HEAD_START_DEFAULTS = {"num-cpus": "0", "num-gpus": "0"}


def job_name(config: TsdlConfig) -> str:
    """`deploy.name`, else `<experiment.name>-<mode>` made a valid RFC 1035 label.

    Returns:
        A lowercase name of at most 47 characters that starts with a letter.

    Raises:
        DeployError: the derived name starts with a digit (KubeRay rejects it: its Services
            are named after the job, and Service names must start with a letter).
    """
    if config.deploy.name:
        return config.deploy.name
    base = re.sub(r"[^a-z0-9-]+", "-", config.experiment.name.lower()).strip("-") or "tsdl"
    suffix = f"-{config.deploy.mode}"
    name = base[: _MAX_JOB_NAME - len(suffix)].rstrip("-") + suffix
    if not _DNS_1035.match(name):
        raise DeployError(
            f"job name {name!r} (from experiment.name {config.experiment.name!r}) must start "
            "with a letter: KubeRay names Services after the job",
            hint=f"set deploy.name, e.g. deploy.name=job-{name}",
        )
    return name


def service_account(deploy: DeployConfig) -> str:
    """The ServiceAccount of every pod: `deploy.service_account`, else the prerequisites' one."""
    return deploy.service_account or DEFAULT_RELEASE


def claim_name(deploy: DeployConfig) -> str:
    """The results claim: `deploy.storage.claim_name`, else the prerequisites' one."""
    return deploy.storage.claim_name or f"{DEFAULT_RELEASE}-results"


def cpu_image(deploy: DeployConfig) -> str:
    """Head and submitter image: `cpu_image`, else `image` with a `-gpu` tag suffix made `-cpu`."""
    if deploy.cpu_image:
        return deploy.cpu_image
    return re.sub(r"-gpu$", "-cpu", deploy.image)


def with_overrides(
    config: TsdlConfig,
    *,
    namespace: str | None = None,
    image: str | None = None,
    gpus_per_worker: int | None = None,
    workers: int | None = None,
    storage: str | None = None,
) -> TsdlConfig:
    """The config with the `tsdl submit`/`render` flags applied to its `deploy:` section.

    `storage` is an object-store URI (deploy.storage.uri) or the name of an existing claim
    (deploy.storage.claim_name): where results and checkpoints go.

    `workers` sets the worker group's replicas; without autoscaling min and max follow it. In
    `train` mode it also sets `resources.num_workers` to the Ray Train workers those pods hold
    (`train_workers_per_pod` each), so added pods do not sit idle; in `tune` mode
    `resources.num_workers` is per trial and more pods mean more trials at once instead.
    The result is validated like a config file, so a bad flag fails with the field it set.
    """
    deploy = config.deploy
    # (key, value) pairs: a flag's value is taken as given, never read as YAML (`-n 0123`).
    overrides: list[tuple[str, object]] = []
    if namespace is not None:
        overrides.append(("deploy.namespace", namespace))
    if image is not None:
        overrides.append(("deploy.image", image))
    if gpus_per_worker is not None:
        overrides.append(("deploy.worker.gpu", gpus_per_worker))
    if storage is not None:
        key = "uri" if "://" in storage else "claim_name"
        overrides.append((f"deploy.storage.{key}", storage))
    if workers is not None:
        low = min(deploy.worker.min_replicas, workers) if deploy.autoscaling else workers
        high = max(deploy.worker.max_replicas, workers) if deploy.autoscaling else workers
        overrides += [
            ("deploy.worker.replicas", workers),
            ("deploy.worker.min_replicas", low),
            ("deploy.worker.max_replicas", high),
        ]
        if deploy.mode == "train":
            gpus = worker_gpus(config) if gpus_per_worker is None else gpus_per_worker
            per_pod = train_workers_per_pod(config, gpus)
            overrides.append(("resources.num_workers", workers * per_pod))
    if not overrides:
        return config
    # exclude_unset: what the config did not set stays unset, so `render --values` omits it.
    return parse_config(
        config.model_dump(mode="json", exclude_unset=True),
        overrides=overrides,
        source="command line",
    )


def train_workers_per_pod(config: TsdlConfig, gpus: int) -> int:
    """Ray Train workers one worker pod holds: its GPUs / gpus_per_worker with GPUs, else its
    CPUs / cpus_per_worker (at least 1)."""
    res = config.resources
    if res.use_gpu and gpus > 0 and res.gpus_per_worker > 0:
        return max(1, math.floor(gpus / res.gpus_per_worker + 1e-9))
    cpus = parse_quantity(config.deploy.worker.cpu)
    return max(1, math.floor(cpus / res.cpus_per_worker + 1e-9))


def autoscaler_capacity(deploy: DeployConfig) -> str:
    """JSON of the CPUs/GPUs the worker group has at `max_replicas` pods, as Ray counts them
    (KubeRay derives `num-cpus` from the CPU limit rounded up, unless rayStartParams set it)."""
    worker = deploy.worker
    if worker.gpu is None:  # unset follows resources.use_gpu, which a DeployConfig cannot see
        raise ValueError("resolve deploy.worker.gpu first (tsdl.deploy.access.with_worker_gpus)")
    params = worker.ray_start_params
    cpus = (
        int(float(params["num-cpus"]))
        if "num-cpus" in params
        else math.ceil(parse_quantity(worker.cpu))
    )
    gpus = int(float(params["num-gpus"])) if "num-gpus" in params else worker.gpu
    return f'{{"CPU": {worker.max_replicas * cpus}, "GPU": {worker.max_replicas * gpus}}}'


def configmap_name(name: str) -> str:
    """The ConfigMap holding the tsdl config of RayJob `name`."""
    return f"{name}-config"


def entrypoint(deploy: DeployConfig, name: str) -> str:
    """The driver command: the chosen mode, the mounted config, results on shared storage.

    The study (tune) or run (train) is named after the RayJob and resumed if it exists, so a
    `backoffLimit` retry on a new cluster, or a resubmission after the head pod died, keeps
    every finished trial and epoch. Each word is shell-quoted (KubeRay runs it through bash).
    """
    storage = deploy.storage.uri or deploy.storage.mount_path
    words = ["tsdl", deploy.mode, "-c", CONFIG_PATH, "--address", "auto"]
    words += ["--set", f"resources.storage_path={storage}"]
    if deploy.mode == "tune":
        words += ["--study-name", name, "--resume-if-exists", "--quiet"]
    else:
        words += ["--run-name", name, "--resume-if-exists"]
    return " ".join(shlex.quote(word) for word in words)


def workload_config(config: TsdlConfig) -> dict[str, Any]:
    """What the pods need from the config: everything but the `deploy:` section."""
    return config.model_dump(mode="json", exclude={"deploy"})


def build_configmap(config: TsdlConfig) -> dict[str, Any]:
    """The ConfigMap mounted at /etc/tsdl; its `config.yaml` is the resolved workload config
    with the pods' tracking URI (`tsdl.deploy.access.for_pods`)."""
    config = for_pods(config)
    name = job_name(config)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": configmap_name(name),
            "namespace": config.deploy.namespace,
            "labels": _labels(name, "config"),
        },
        "data": {"config.yaml": yaml.safe_dump(workload_config(config), sort_keys=False)},
    }


def build_rayjob(config: TsdlConfig) -> dict[str, Any]:
    """The `ray.io/v1` RayJob: CPU head, one (GPU) worker group, submitter, teardown settings.

    Args:
        config: a validated config; its `deploy:` section decides the cluster shape.

    Returns:
        The RayJob as a plain dict, ready for `CustomObjectsApi.create_namespaced_custom_object`.
    """
    config = for_pods(config)
    deploy = config.deploy
    name = job_name(config)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": deploy.namespace,
        "labels": {**_labels(name, "rayjob"), **_gang_labels(deploy)},
    }
    spec: dict[str, Any] = {
        "entrypoint": entrypoint(deploy, name),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": deploy.shutdown_after_job_finishes,
        "ttlSecondsAfterFinished": deploy.ttl_seconds_after_finished,
        "backoffLimit": deploy.backoff_limit,
        "submitterConfig": {"backoffLimit": deploy.submitter.backoff_limit},
        "submitterPodTemplate": _submitter_template(deploy, name),
        "rayClusterSpec": _cluster_spec(deploy, name),
    }
    if deploy.pre_running_deadline_seconds is not None:
        spec["preRunningDeadlineSeconds"] = deploy.pre_running_deadline_seconds
    if deploy.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = deploy.active_deadline_seconds
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": metadata, "spec": spec}


def build_network_policy(config: TsdlConfig) -> dict[str, Any]:
    """Ingress to the job's Ray pods only from its own pods (head, workers, submitter) and from
    `network_policy.allowed_namespaces` (the KubeRay operator polls the dashboard)."""
    deploy = config.deploy
    name = job_name(config)
    # part-of, not name: Ray pods keep KubeRay's app.kubernetes.io/name (its Services select it).
    own = {"app.kubernetes.io/part-of": "tsdl", "app.kubernetes.io/instance": name}
    peers: list[dict[str, Any]] = [
        {
            "podSelector": {
                "matchLabels": dict(own),
                "matchExpressions": [_component_in("ray-head", "ray-worker", "submitter")],
            }
        }
    ]
    if deploy.network_policy.operator_pod_labels:
        peers.append(
            {
                "namespaceSelector": {},
                "podSelector": {"matchLabels": dict(deploy.network_policy.operator_pod_labels)},
            }
        )
    if deploy.network_policy.allowed_namespaces:
        peers.append(
            {
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "In",
                            "values": list(deploy.network_policy.allowed_namespaces),
                        }
                    ]
                }
            }
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{name}-ray",
            "namespace": deploy.namespace,
            "labels": _labels(name, "network-policy"),
        },
        "spec": {
            "podSelector": {
                "matchLabels": dict(own),
                "matchExpressions": [_component_in("ray-head", "ray-worker")],
            },
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers}],
        },
    }


def build_manifests(config: TsdlConfig) -> list[dict[str, Any]]:
    """The objects `tsdl submit` creates, in apply order: ConfigMap, NetworkPolicy, RayJob."""
    if worker_gpus(config) > 0 and not config.resources.use_gpu:
        raise DeployError(
            f"deploy.worker.gpu is {config.deploy.worker.gpu} but resources.use_gpu is false, "
            "so the GPUs would sit idle",
            hint="set resources.use_gpu=true, or deploy.worker.gpu=0 for CPU workers",
        )
    config = for_pods(config)
    check_placement(config)
    manifests = [build_configmap(config)]
    if config.deploy.network_policy.enabled:
        manifests.append(build_network_policy(config))
    return [*manifests, build_rayjob(config)]


def _component_in(*components: str) -> dict[str, Any]:
    return {"key": "app.kubernetes.io/component", "operator": "In", "values": list(components)}


def _labels(name: str, component: str) -> dict[str, str]:
    """Kubernetes recommended labels; `managed-by` says who created the object."""
    return {
        "app.kubernetes.io/name": "tsdl",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "tsdl",
        "app.kubernetes.io/managed-by": "tsdl",
    }


def _gang_labels(deploy: DeployConfig) -> dict[str, str]:
    """Kueue admits the RayJob via its queue label; Volcano via scheduler + queue labels."""
    if deploy.gang.scheduler == "kueue":
        return {"kueue.x-k8s.io/queue-name": str(deploy.gang.queue)}
    if deploy.gang.scheduler == "volcano":
        return {"ray.io/scheduler-name": "volcano", "volcano.sh/queue-name": str(deploy.gang.queue)}
    return {}


def _cluster_spec(deploy: DeployConfig, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "rayVersion": deploy.ray_version,
        "enableInTreeAutoscaling": deploy.autoscaling,
    }
    if deploy.ray_auth == "token":
        spec["authOptions"] = {"mode": "token"}
    if deploy.autoscaling:
        spec["autoscalerOptions"] = {
            "imagePullPolicy": deploy.image_pull_policy,
            "resources": _resources("500m", "512Mi"),
            "securityContext": _container_security(deploy),
        }
    head = deploy.head
    head_params = {**_HEAD_START_DEFAULTS, **head.ray_start_params}
    head_store = object_store_bytes(head.memory, head_params)
    spec["headGroupSpec"] = {
        "rayStartParams": {**head_params, "object-store-memory": str(head_store)},
        "template": _ray_pod(
            deploy,
            name,
            "ray-head",
            _resources(head.cpu, head.memory),
            head,
            _shm(deploy, head_store, "head"),
        ),
    }
    worker = deploy.worker
    worker_store = object_store_bytes(worker.memory, worker.ray_start_params)
    spec["workerGroupSpecs"] = [
        {
            "groupName": worker.group_name,
            "replicas": worker.replicas,
            "minReplicas": worker.min_replicas,
            "maxReplicas": worker.max_replicas,
            "rayStartParams": {
                **worker.ray_start_params,
                "object-store-memory": str(worker_store),
            },
            "template": _ray_pod(
                deploy,
                name,
                "ray-worker",
                _resources(worker.cpu, worker.memory, int(worker.gpu or 0)),
                worker,
                _shm(deploy, worker_store, "worker"),
            ),
        }
    ]
    return spec


def single_node_claim(deploy: DeployConfig) -> bool:
    """Results on a claim without ReadWriteMany, mounted by one worker pod at most: every Ray
    pod must share that pod's node (else: Multi-Attach, and the job waits out its deadline)."""
    storage = deploy.storage
    return storage.uri is None and "ReadWriteMany" not in storage.access_modes and deploy.worker.max_replicas <= 1


def head_follows_worker(deploy: DeployConfig) -> bool:
    """On a single-node claim the head follows the worker pod (its GPU request and selectors pick
    the node); with no guaranteed worker pod (min_replicas 0) the worker follows the head."""
    return single_node_claim(deploy) and deploy.worker.min_replicas >= 1


def check_placement(config: TsdlConfig) -> None:
    """Refuse a GPU worker that must follow a head placed on any node (N2)."""
    deploy = config.deploy
    if (
        worker_gpus(config) > 0
        and single_node_claim(deploy)
        and not head_follows_worker(deploy)
        and not (deploy.head.node_selector or deploy.head.affinity)
    ):
        raise DeployError(
            "deploy.worker.min_replicas: with 0 guaranteed GPU worker pods the head is placed first, "
            "on any node, and the ReadWriteOnce results claim then keeps the GPU worker on that node",
            hint="set deploy.worker.min_replicas=1, --storage s3://BUCKET/PREFIX, a ReadWriteMany claim "
            "(--storage CLAIM), or deploy.head.node_selector to your GPU nodes",
        )


def _same_node(deploy: DeployConfig, name: str, component: str, placement: Any) -> tuple[list, dict]:
    """Tolerations and affinity of a pod, with the single-node claim's co-location added."""
    tolerations = list(placement.tolerations)
    affinity = dict(placement.affinity)
    if "podAffinity" in affinity or not single_node_claim(deploy):
        return tolerations, affinity
    follow = None
    if component == "ray-head" and head_follows_worker(deploy):
        follow = "ray-worker"
        tolerations += [t for t in deploy.worker.tolerations if t not in tolerations]
    elif component == "ray-worker" and not head_follows_worker(deploy):
        follow = "ray-head"
    if follow:
        term = {
            "labelSelector": {
                "matchLabels": {"app.kubernetes.io/instance": name, "app.kubernetes.io/component": follow}
            },
            "topologyKey": "kubernetes.io/hostname",
        }
        affinity["podAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    return tolerations, affinity


def _shm(deploy: DeployConfig, store_bytes: int, where: str) -> str:
    """`/dev/shm` of one pod group: its own `shm_size`, else `deploy.shm_size` (if big enough),
    else sized from its store (N13: one size for both roles gave the head more shm than memory)."""
    size = getattr(deploy, where).shm_size or deploy.shm_size
    if size is None:
        return shm_limit(store_bytes)
    check_shm(size, store_bytes, f"deploy.{where}")
    return size


def _ray_pod(
    deploy: DeployConfig,
    name: str,
    component: str,
    resources: dict[str, Any],
    placement: Any,
    shm: str,
) -> dict[str, Any]:
    """A head or worker pod template: mounts, env, security context and placement."""
    mounts = [
        {"name": "tsdl-config", "mountPath": CONFIG_MOUNT_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "tsdl-config", "configMap": {"name": configmap_name(name)}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}},
    ]
    if deploy.storage.uri is None:
        mounts.append({"name": "results", "mountPath": deploy.storage.mount_path})
        volumes.append(
            {"name": "results", "persistentVolumeClaim": {"claimName": claim_name(deploy)}}
        )
    if deploy.data.claim_name:
        mounts.append({"name": "data", "mountPath": deploy.data.mount_path, "readOnly": True})
        volumes.append(
            {
                "name": "data",
                "persistentVolumeClaim": {"claimName": deploy.data.claim_name, "readOnly": True},
            }
        )
    ray_container: dict[str, Any] = {
        "name": component,
        "image": deploy.image if component == "ray-worker" else cpu_image(deploy),
        "imagePullPolicy": deploy.image_pull_policy,
        "env": _env(deploy),
        "resources": resources,
        "securityContext": _container_security(deploy),
        "volumeMounts": mounts,
    }
    if deploy.autoscaling and component == "ray-head":
        # The driver runs on the head: tune sizes its concurrency from what the autoscaler may add.
        ray_container["env"].append(
            {"name": AUTOSCALER_CAPACITY_ENV, "value": autoscaler_capacity(deploy)}
        )
    if deploy.mlflow.credentials_secret:
        ray_container["envFrom"] = [{"secretRef": {"name": deploy.mlflow.credentials_secret}}]
    pod = _pod_spec(deploy, [ray_container], volumes)
    # The in-tree autoscaler runs next to the head and talks to the API server.
    pod["automountServiceAccountToken"] = deploy.autoscaling and component == "ray-head"
    tolerations, affinity = _same_node(deploy, name, component, placement)
    for key, value in (
        ("nodeSelector", placement.node_selector),
        ("tolerations", tolerations),
        ("affinity", affinity),
    ):
        if value:
            pod[key] = value
    return {"metadata": {"labels": _ray_pod_labels(name, component)}, "spec": pod}


def _ray_pod_labels(name: str, component: str) -> dict[str, str]:
    """`_labels` without app.kubernetes.io/name: KubeRay sets it to `kuberay` and its RayJob
    Service `<job>-head-svc` selects on it, so overriding it left that Service empty (N11)."""
    labels = _labels(name, component)
    del labels["app.kubernetes.io/name"]
    return labels


def _submitter_template(deploy: DeployConfig, name: str) -> dict[str, Any]:
    """The submitter runs `tsdl.deploy.submitter`, not KubeRay's default `ray job submit`
    command: it exits 0 only when the job finished, so a lost head is retried (see there)."""
    container = {
        "name": "ray-job-submitter",
        "image": cpu_image(deploy),
        "imagePullPolicy": deploy.image_pull_policy,
        "command": list(SUBMITTER_COMMAND),
        "args": ["--entrypoint", entrypoint(deploy, name)],
        "resources": _resources(deploy.submitter.cpu, deploy.submitter.memory),
        "securityContext": _container_security(deploy),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if deploy.mlflow.tracking_uri:
        container["env"] = [{"name": "MLFLOW_TRACKING_URI", "value": deploy.mlflow.tracking_uri}]
    pod = _pod_spec(deploy, [container], [{"name": "tmp", "emptyDir": {}}])
    pod["restartPolicy"] = "Never"
    pod["automountServiceAccountToken"] = False
    return {"metadata": {"labels": _labels(name, "submitter")}, "spec": pod}


def _pod_spec(
    deploy: DeployConfig, containers: list[dict[str, Any]], volumes: list[dict[str, Any]]
) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "serviceAccountName": service_account(deploy),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": _RAY_UID,
            "runAsGroup": _RAY_GID,
            "fsGroup": _RAY_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": volumes,
    }
    if deploy.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": secret} for secret in deploy.image_pull_secrets]
    return pod


def _container_security(deploy: DeployConfig) -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": deploy.read_only_root_filesystem,
        "capabilities": {"drop": ["ALL"]},
    }


def _env(deploy: DeployConfig) -> list[dict[str, str]]:
    """Caches go to /tmp so a read-only root filesystem works; MLflow is reached via its URI."""
    env = [
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/.matplotlib"},
    ]
    if deploy.mlflow.tracking_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": deploy.mlflow.tracking_uri})
    return env


def _resources(cpu: str, memory: str, gpu: int = 0) -> dict[str, Any]:
    """Requests equal limits (Guaranteed QoS): Ray sizes itself from the limits."""
    amounts: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpu > 0:
        amounts["nvidia.com/gpu"] = gpu
    return {"requests": dict(amounts), "limits": dict(amounts)}
