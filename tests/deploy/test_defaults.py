"""Defaults a shared GPU cluster can live with: short TTL, deadlines, Ray auth, a NetworkPolicy,
an object store that fits /dev/shm, a head without GPUs, credentials only where used."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy._presets import load_preset
from tests.deploy.conftest import CRD_DIR
from tsdl.config import DeployConfig, parse_config
from tsdl.deploy import build_manifests, with_overrides
from tsdl.deploy.chart import CHART_DIR, render_chart
from tsdl.deploy.sizing import parse_quantity
from tsdl.errors import DeployError

_GPU = {"resources": {"use_gpu": True}}
PRESETS = sorted(p.name for p in (CHART_DIR / "ci").glob("*-values.yaml"))


def _both(config: dict[str, Any], values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The RayJob from `tsdl submit` and from the chart's defaults (plus `values`)."""
    python = build_manifests(parse_config(config))[-1]
    helm = next(o for o in render_chart(values or {}) if o["kind"] == "RayJob")
    return [python, helm]


def _crd_spec() -> dict[str, Any]:
    if not (CRD_DIR / "ray.io_rayjobs.yaml").exists():
        pytest.skip("KubeRay CRDs not found (../shared is absent)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((CRD_DIR / "ray.io_rayjobs.yaml").read_text(), Loader=loader)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def test_the_kuberay_17_crd_has_the_fields_the_defaults_use() -> None:
    spec = _crd_spec()["properties"]
    assert {"preRunningDeadlineSeconds", "activeDeadlineSeconds", "ttlSecondsAfterFinished"} <= set(
        spec
    )
    auth = spec["rayClusterSpec"]["properties"]["authOptions"]["properties"]
    assert "token" in auth["mode"]["enum"]


def test_finished_clusters_go_quickly_and_stuck_ones_fail() -> None:
    for job in _both(_GPU):
        spec = job["spec"]
        assert spec["shutdownAfterJobFinishes"] is True
        assert spec["ttlSecondsAfterFinished"] <= 60
        assert spec["preRunningDeadlineSeconds"] == 1800
        assert spec["activeDeadlineSeconds"] == 86400
        assert spec["rayClusterSpec"]["authOptions"] == {"mode": "token"}


def test_a_failed_attempt_gets_one_new_cluster_where_the_work_resumes() -> None:
    """N7: KubeRay 1.7 (checkBackoffLimitAndUpdateStatusIfNeeded) retries a RayJob that failed
    with SubmissionFailed (the submitter ran out of retries while a lost head was rescheduled) or
    AppFailed only when backoffLimit >= 1; the entrypoint resumes the study or run by name, and the
    resume refuses a changed config, so one retry is safe by default."""
    for job in _both(_GPU):
        assert job["spec"]["backoffLimit"] == 1
        entry = job["spec"]["entrypoint"]
        assert "--resume-if-exists" in entry


def test_deadlines_and_auth_are_overridable() -> None:
    config = {
        **_GPU,
        "deploy": {
            "pre_running_deadline_seconds": None,
            "active_deadline_seconds": None,
            "ttl_seconds_after_finished": 600,
            "ray_auth": "disabled",
        },
    }
    values = {
        "preRunningDeadlineSeconds": None,
        "activeDeadlineSeconds": None,
        "ttlSecondsAfterFinished": 600,
        "rayAuth": "disabled",
    }
    for job in _both(config, values):
        assert "preRunningDeadlineSeconds" not in job["spec"]
        assert "activeDeadlineSeconds" not in job["spec"]
        assert job["spec"]["ttlSecondsAfterFinished"] == 600
        assert "authOptions" not in job["spec"]["rayClusterSpec"]


def test_network_policy_admits_only_the_job_and_allowed_namespaces() -> None:
    config = parse_config({**_GPU, "deploy": {"name": "etth1", "namespace": "ml"}})
    manifests = build_manifests(config)
    policy = next(m for m in manifests if m["kind"] == "NetworkPolicy")
    job = manifests[-1]
    selector = policy["spec"]["podSelector"]
    cluster = job["spec"]["rayClusterSpec"]
    head_labels = cluster["headGroupSpec"]["template"]["metadata"]["labels"]
    worker_labels = cluster["workerGroupSpecs"][0]["template"]["metadata"]["labels"]
    submitter_labels = job["spec"]["submitterPodTemplate"]["metadata"]["labels"]
    assert _selects(selector, head_labels) and _selects(selector, worker_labels)
    assert not _selects(selector, submitter_labels)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    pods, operator, namespaces = rule["from"]
    for labels in (head_labels, worker_labels, submitter_labels):
        assert _selects(pods["podSelector"], labels)
    other_job = {**submitter_labels, "app.kubernetes.io/instance": "someone-else"}
    assert not _selects(pods["podSelector"], other_job)
    assert namespaces["namespaceSelector"]["matchExpressions"][0]["values"] == ["kuberay-system"]
    assert "ports" not in rule  # all ports, but only from these peers
    # N5: the operator, wherever installed (KubeRay's quick start puts it in `default`).
    assert operator["namespaceSelector"] == {}
    for operator_pod in (KUBERAY_CHART_OPERATOR_LABELS, KUBERAY_KUSTOMIZE_OPERATOR_LABELS):
        assert _selects(operator["podSelector"], operator_pod)
    assert not _selects(operator["podSelector"], head_labels)


# The operator pod's labels as KubeRay v1.7 ships them: helm-chart/kuberay-operator's deployment
# (name and component default to the chart name) and ray-operator/config/manager (kustomize,
# whose webhook Service selects app.kubernetes.io/component: kuberay-operator).
KUBERAY_CHART_OPERATOR_LABELS = {
    "app.kubernetes.io/name": "kuberay-operator",
    "app.kubernetes.io/instance": "kuberay-operator",
    "app.kubernetes.io/component": "kuberay-operator",
}
KUBERAY_KUSTOMIZE_OPERATOR_LABELS = {
    "app.kubernetes.io/name": "kuberay",
    "app.kubernetes.io/component": "kuberay-operator",
}


def test_ray_pods_keep_kuberays_name_label_so_its_head_service_selects_them() -> None:
    """N11: KubeRay's `<job>-head-svc` selects app.kubernetes.io/name=kuberay (job.go, service.go);
    the Ray pods must not override it, in tsdl and in the chart."""
    for job in _both(_GPU, {}):
        cluster = job["spec"]["rayClusterSpec"]
        for template in (cluster["headGroupSpec"]["template"], cluster["workerGroupSpecs"][0]["template"]):
            labels = template["metadata"]["labels"]
            assert "app.kubernetes.io/name" not in labels
            assert labels["app.kubernetes.io/part-of"] == "tsdl"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_network_policy_can_be_opened_or_dropped() -> None:
    opened = parse_config(
        {**_GPU, "deploy": {"network_policy": {"allowed_namespaces": ["kuberay", "monitoring"]}}}
    )
    policy = next(m for m in build_manifests(opened) if m["kind"] == "NetworkPolicy")
    assert policy["spec"]["ingress"][0]["from"][2]["namespaceSelector"]["matchExpressions"][0][
        "values"
    ] == ["kuberay", "monitoring"]
    dropped = parse_config({**_GPU, "deploy": {"network_policy": {"enabled": False}}})
    assert [m["kind"] for m in build_manifests(dropped)] == ["ConfigMap", "RayJob"]
    kinds = {o["kind"] for o in render_chart({"networkPolicy": {"enabled": False}})}
    assert "NetworkPolicy" not in kinds


def test_the_chart_mlflow_server_admits_only_tsdl_pods() -> None:
    objects = render_chart({"job": {"enabled": False}}, release="tsdl", namespace="ml")
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy")
    server = next(o for o in objects if o["kind"] == "Deployment")
    assert policy["metadata"]["name"] == "tsdl-mlflow"
    assert _selects(policy["spec"]["podSelector"], server["spec"]["template"]["metadata"]["labels"])
    pods, namespaces = policy["spec"]["ingress"][0]["from"]
    job = build_manifests(parse_config({**_GPU, "deploy": {"namespace": "ml"}}))[-1]
    for group in _groups(job):
        assert _selects(pods["podSelector"], group["template"]["metadata"]["labels"])
    assert not _selects(pods["podSelector"], {"app": "someone-elses-pod"})
    assert namespaces["namespaceSelector"]["matchExpressions"][0]["values"] == ["kuberay-system"]


def _groups(job: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    return [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]


def _shm(group: dict[str, Any]) -> str:
    volumes = group["template"]["spec"]["volumes"]
    return next(v["emptyDir"]["sizeLimit"] for v in volumes if v["name"] == "dshm")


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_the_object_store_fits_in_shm_in_every_pod(preset: str | None) -> None:
    """Ray keeps plasma in /dev/shm only if it fits in 95% of it; else it spills to /tmp."""
    values = load_preset(preset) if preset else {}
    job = next(o for o in render_chart(values) if o["kind"] == "RayJob")
    for group in _groups(job):
        store = int(group["rayStartParams"]["object-store-memory"])
        limit = group["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
        assert store <= parse_quantity(_shm(group)) * 0.95
        assert store <= parse_quantity(limit) * 0.3 + 1  # Ray's own default share, no more
        # N13: shm is memory; a limit above the pod's own memory hides the real budget.
        assert parse_quantity(_shm(group)) <= parse_quantity(limit)


def test_shm_is_sized_per_role() -> None:
    """N13: head.shmSize / worker.shmSize beat the shared shmSize, in tsdl and in the chart."""
    config = {**_GPU, "deploy": {"shm_size": "12Gi", "worker": {"shm_size": "20Gi"}, "head": {"shm_size": "3Gi"}}}
    values = {"shmSize": "12Gi", "worker": {"shmSize": "20Gi"}, "head": {"shmSize": "3Gi"}}
    for job in _both(config, values):
        head, worker = _groups(job)
        assert (_shm(head), _shm(worker)) == ("3Gi", "20Gi")
    for job in _both({**_GPU, "deploy": {"shm_size": "12Gi"}}, {"shmSize": "12Gi"}):
        assert [_shm(g) for g in _groups(job)] == ["12Gi", "12Gi"]


def test_shm_defaults_follow_the_memory_of_each_pod() -> None:
    config = {**_GPU, "deploy": {"worker": {"memory": "64Gi"}, "head": {"memory": "4Gi"}}}
    values = {"worker": {"memory": "64Gi"}, "head": {"memory": "4Gi"}}
    for job in _both(config, values):
        head, worker = _groups(job)
        assert head["rayStartParams"]["object-store-memory"] == str(int(4 * 1024**3 * 0.3))
        assert worker["rayStartParams"]["object-store-memory"] == str(int(64 * 1024**3 * 0.3))
        assert (_shm(head), _shm(worker)) == ("1352Mi", "21627Mi")


def test_a_too_small_explicit_shm_fails_in_one_line() -> None:
    with pytest.raises(DeployError) as python:
        build_manifests(parse_config({**_GPU, "deploy": {"shm_size": "8Gi"}}))
    assert "deploy.shm_size / deploy.worker.shm_size 8Gi is below the deploy.worker Ray object store" in python.value.message
    with pytest.raises(DeployError, match="shmSize: 8Gi is below the worker") as helm:
        render_chart({"shmSize": "8Gi"})
    assert "\n" not in python.value.one_line() and "\n" not in helm.value.one_line()


def test_the_head_never_advertises_gpus_even_with_its_own_start_params() -> None:
    config = {**_GPU, "deploy": {"head": {"ray_start_params": {"num-cpus": "1"}}}}
    values = {"head": {"rayStartParams": {"num-cpus": "1"}}}
    for job in _both(config, values):
        params = _groups(job)[0]["rayStartParams"]
        assert params["num-gpus"] == "0" and params["num-cpus"] == "1"


def test_credentials_reach_only_the_ray_containers_that_use_them() -> None:
    """Driver (head) and rank-0 Train worker log to MLflow and write checkpoints; the submitter
    and the autoscaler sidecar only talk to Ray and the API server."""
    config = {
        **_GPU,
        "deploy": {"autoscaling": True, "mlflow": {"credentials_secret": "mlflow-aws"}},
    }
    values = {"autoscaling": True, "mlflow": {"credentialsSecret": "mlflow-aws"}}
    for job in _both(config, values):
        submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
        # The submitter only runs `ray job submit`: no credentials, just where tracking is.
        assert "envFrom" not in submitter
        assert [e["name"] for e in submitter.get("env", [])] == ["MLFLOW_TRACKING_URI"]
        assert "env" not in job["spec"]["rayClusterSpec"]["autoscalerOptions"]
        for group in _groups(job):
            (container,) = group["template"]["spec"]["containers"]
            assert container["envFrom"] == [{"secretRef": {"name": "mlflow-aws"}}]


def test_head_and_submitter_run_the_cpu_image() -> None:
    for job in _both(_GPU):
        head, worker = _groups(job)
        submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
        assert submitter["image"] == head["template"]["spec"]["containers"][0]["image"]
        assert head["template"]["spec"]["containers"][0]["image"].endswith("-cpu")
        assert worker["template"]["spec"]["containers"][0]["image"].endswith("-gpu")
    assert DeployConfig(image="tsdl:e2e").image == "tsdl:e2e"


def test_workers_flag_scales_the_train_workers_too() -> None:
    gpu_train = parse_config(
        {
            "resources": {"use_gpu": True, "num_workers": 1, "gpus_per_worker": 1},
            "deploy": {"mode": "train", "worker": {"gpu": 4}},
        }
    )
    scaled = with_overrides(gpu_train, workers=3)
    assert scaled.deploy.worker.replicas == 3 and scaled.resources.num_workers == 12
    assert with_overrides(gpu_train, workers=2, gpus_per_worker=1).resources.num_workers == 2
    cpu_train = parse_config(
        {
            "resources": {"cpus_per_worker": 2},
            "deploy": {"mode": "train", "worker": {"gpu": 0, "cpu": "8"}},
        }
    )
    assert with_overrides(cpu_train, workers=2).resources.num_workers == 8
    # In tune mode num_workers is per trial: more pods mean more trials at once instead.
    tune = parse_config({**_GPU, "deploy": {"mode": "tune"}})
    assert with_overrides(tune, workers=4).resources.num_workers == tune.resources.num_workers
