"""What the pods can reach (tsdl/deploy/access.py and the chart's mirror of it): tracking in
every pod, storage that binds on a stock cluster, data the driver can read, resumable entrypoints.

Each test names the failure of the issue it covers; on the code before it, each fails.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import yaml

from tests.deploy._presets import load_preset
from tsdl.cli.main import main
from tsdl.config import parse_config
from tsdl.deploy import build_manifests
from tsdl.deploy.chart import render_chart
from tsdl.errors import ConfigError, DeployError

_CPU = {"deploy": {"worker": {"gpu": 0, "tolerations": []}}}


def _containers(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    return {
        "head": cluster["headGroupSpec"]["template"]["spec"]["containers"][0],
        "worker": cluster["workerGroupSpecs"][0]["template"]["spec"]["containers"][0],
        "submitter": spec["submitterPodTemplate"]["spec"]["containers"][0],
    }


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _kinds(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


# --- tracking (B1, m3) -------------------------------------------------------------------------


def test_every_pod_gets_the_tracking_server_from_submit() -> None:
    """B1: without an explicit URI the pods used sqlite:///mlflow.db in a read-only /home/ray."""
    job = _kinds(build_manifests(parse_config(_CPU)))["RayJob"]
    for role, container in _containers(job).items():
        assert _env(container)["MLFLOW_TRACKING_URI"] == "http://tsdl-mlflow:5000", role


def test_every_pod_gets_the_tracking_server_from_the_chart() -> None:
    """A job release logs to the prerequisites' server, as `tsdl submit` does (N12); one with a
    server of its own logs there."""
    shared = _kinds(render_chart({}, release="etth1", namespace="ml"))["RayJob"]
    own = _kinds(
        render_chart({"mlflow": {"server": {"enabled": True}}}, release="etth1", namespace="ml")
    )["RayJob"]
    for role, container in _containers(shared).items():
        assert _env(container)["MLFLOW_TRACKING_URI"] == "http://tsdl-mlflow:5000", role
    for role, container in _containers(own).items():
        assert _env(container)["MLFLOW_TRACKING_URI"] == "http://etth1-mlflow.ml.svc:5000", role


def test_a_head_with_the_releases_own_mlflow_waits_for_it_and_one_on_the_shared_server_does_not() -> (
    None
):
    """The release's own server starts with the job; on the cluster e2e (kind preset) the driver's
    preflight ran first and the job failed 'MLflow tracking server ... unreachable'."""
    for values, waits in (({}, False), ({"mlflow": {"server": {"enabled": True}}}, True),
                          (load_preset("kind-cpu-values.yaml"), True)):  # fmt: skip
        job = _kinds(render_chart(values, release="etth1", namespace="ml"))["RayJob"]
        head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
        inits = {c["name"]: c for c in head.get("initContainers", [])}
        assert ("wait-mlflow" in inits) is waits, values
        if waits:
            uri = _env(_containers(job)["head"])["MLFLOW_TRACKING_URI"]
            assert inits["wait-mlflow"]["command"][-1] == uri
            assert inits["wait-mlflow"]["securityContext"] == _containers(job)["head"]["securityContext"]


def test_a_laptop_tracking_uri_is_replaced_in_the_mounted_config_and_said_on_stderr(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """m3: a config's sqlite:///mlflow.db silently beat the cluster's server in the pods."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "tracking:\n  tracking_uri: sqlite:///mlflow.db\n"
        "deploy:\n  worker: {gpu: 0, tolerations: []}\n"
        "  mlflow: {tracking_uri: 'http://mlflow.ml.svc:5000'}\n"
    )
    assert main(["render", "-c", str(cfg)]) == 0
    out, err = capsys.readouterr()
    assert (
        err.count("\n") == 1 and "sqlite:///mlflow.db" in err and "http://mlflow.ml.svc:5000" in err
    )
    assert "tracking_uri: http://mlflow.ml.svc:5000" in out and "sqlite" not in out

    helm = _kinds(
        render_chart(
            {"config": {"tracking": {"tracking_uri": "sqlite:///mlflow.db"}}},
            release="etth1",
            namespace="ml",
        )
    )
    assert "tracking_uri: http://tsdl-mlflow:5000" in helm["ConfigMap"]["data"]["config.yaml"]


def test_the_chart_refuses_a_job_with_no_tracking_server() -> None:
    with pytest.raises(DeployError, match="mlflow: the pods need a tracking server"):
        render_chart({"mlflow": {"server": {"enabled": False}}})
    off = render_chart(
        {"mlflow": {"server": {"enabled": False}}, "config": {"tracking": {"enabled": False}}}
    )
    assert "MLFLOW_TRACKING_URI" not in _env(_containers(_kinds(off)["RayJob"])["head"])


def test_the_mlflow_server_serves_artifacts_with_one_worker() -> None:
    server = _kinds(render_chart({"job": {"enabled": False}}))["Deployment"]["spec"]["template"][
        "spec"
    ]["containers"][0]
    assert "--serve-artifacts" in server["command"] and "--workers=1" in server["command"]


# --- storage (B2, M2) --------------------------------------------------------------------------

_CHOICES = ("storage.uri=s3://", "storage.claimName=", "storage.storageClassName=")


def test_a_read_write_many_claim_of_the_default_class_is_refused() -> None:
    """B2: the default claim asked ReadWriteMany of the default class and stayed Pending."""
    with pytest.raises(DeployError) as caught:
        render_chart({"storage": {"createClaim": True, "accessModes": ["ReadWriteMany"]}})
    assert all(choice in caught.value.message for choice in _CHOICES)


def test_the_multi_node_preset_without_shared_storage_fails_with_the_three_choices() -> None:
    preset = load_preset("multi-node-gpu-values.yaml")
    del preset["storage"]["storageClassName"]
    with pytest.raises(DeployError) as caught:
        render_chart(preset)
    assert all(choice in caught.value.message for choice in _CHOICES)
    with pytest.raises(DeployError, match="2 worker pods span nodes"):
        render_chart({**preset, "storage": {"createClaim": True, "accessModes": ["ReadWriteOnce"]}})
    # ... and on the prerequisites' shared ReadWriteOnce claim (the default without the preset's).
    with pytest.raises(DeployError, match="which the ReadWriteOnce claim tsdl-results cannot"):
        render_chart({**preset, "storage": {"accessModes": ["ReadWriteOnce"]}})
    for storage in (
        {"uri": "s3://results/tsdl"},
        {"createClaim": False, "claimName": "shared-results"},
        {"storageClassName": "efs-sc"},
    ):
        render_chart({**preset, "storage": {**preset["storage"], **storage}})


def _pod(job: dict, component: str) -> dict:
    cluster = job["spec"]["rayClusterSpec"]
    group = cluster["headGroupSpec"] if component == "ray-head" else cluster["workerGroupSpecs"][0]
    return group["template"]["spec"]


def _follows(pod: dict) -> str | None:
    terms = pod.get("affinity", {}).get("podAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if not terms:
        return None
    (term,) = terms
    assert term["topologyKey"] == "kubernetes.io/hostname"
    return term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"]


_GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def test_the_default_claim_binds_anywhere_and_the_head_follows_the_gpu_worker() -> None:
    """M2/N2: a ReadWriteOnce claim mounted on two nodes is a Multi-Attach error, and a GPU worker
    told to follow a CPU head can schedule nowhere: the head goes to the worker's (GPU) node,
    tolerating its taint."""
    gpu = {"config": {"resources": {"use_gpu": True}}}
    own = _kinds(render_chart({**gpu, "storage": {"createClaim": True}}, release="etth1"))
    assert own["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert _follows(_pod(own["RayJob"], "ray-head")) == "ray-worker"
    job = _kinds(render_chart(gpu, release="etth1"))["RayJob"]  # on the shared tsdl-results
    assert (
        _follows(_pod(job, "ray-head")) == "ray-worker"
        and _follows(_pod(job, "ray-worker")) is None
    )
    assert _GPU_TAINT in _pod(job, "ray-head")["tolerations"]
    shared = _kinds(render_chart({"storage": {"uri": "s3://b/p"}}, release="etth1"))["RayJob"]
    assert _follows(_pod(shared, "ray-head")) is None and _follows(_pod(shared, "ray-worker")) is None
    assert "tolerations" not in _pod(shared, "ray-head")


@pytest.mark.parametrize("filename", ["rayjob-tune.yaml", "rayjob-train.yaml"])
def test_k8s_job_files_keep_head_and_worker_on_the_claims_node(filename: str) -> None:
    """N1: k8s/ mounts the prerequisites' ReadWriteOnce claim tsdl-results in head and worker."""
    from tsdl.deploy.chart import K8S_DIR

    job = list(yaml.safe_load_all((K8S_DIR / filename).read_text()))[-1]
    assert _follows(_pod(job, "ray-head")) == "ray-worker"
    assert _GPU_TAINT in _pod(job, "ray-head")["tolerations"]


def test_submit_keeps_head_and_worker_on_the_default_claims_node() -> None:
    """N1: `tsdl submit` mounts tsdl-results (ReadWriteOnce) in both pods; an RWX claim frees them."""
    config = parse_config({"resources": {"use_gpu": True}})
    job = build_manifests(config)[-1]
    assert _follows(_pod(job, "ray-head")) == "ray-worker"
    rwx = parse_config({"resources": {"use_gpu": True},
                        "deploy": {"storage": {"claim_name": "nfs", "access_modes": ["ReadWriteMany"]}}})
    assert _follows(_pod(build_manifests(rwx)[-1], "ray-head")) is None


def test_no_guaranteed_gpu_worker_on_a_single_node_claim_is_refused_with_the_choices() -> None:
    """With minReplicas 0 the head is placed first; a GPU worker would have to follow it."""
    values = {"autoscaling": True, "worker": {"minReplicas": 0}, "config": {"resources": {"use_gpu": True}}}
    with pytest.raises(DeployError, match="worker.minReplicas") as caught:
        render_chart(values)
    assert "storage.uri" in caught.value.message and "head.nodeSelector" in caught.value.message
    config = parse_config({"resources": {"use_gpu": True},
                           "deploy": {"autoscaling": True, "worker": {"min_replicas": 0}}})
    with pytest.raises(DeployError, match="min_replicas"):
        build_manifests(config)
    cpu = _kinds(render_chart({"autoscaling": True, "worker": {"minReplicas": 0},
                               "config": {"resources": {"use_gpu": False}}}))["RayJob"]
    assert _follows(_pod(cpu, "ray-worker")) == "ray-head"  # CPU workers may follow the head


def test_submit_refuses_a_multi_node_job_on_the_namespaces_single_node_claim() -> None:
    config = parse_config(
        {
            **_CPU,
            "deploy": {
                **_CPU["deploy"],
                "worker": {
                    "gpu": 0,
                    "tolerations": [],
                    "replicas": 2,
                    "max_replicas": 2,
                    "min_replicas": 2,
                },
            },
        }
    )
    with pytest.raises(DeployError) as caught:
        build_manifests(config)
    line = caught.value.one_line()
    assert "tsdl-results is ReadWriteOnce" in line and "s3://" in line and "ReadWriteMany" in line
    shared = parse_config(
        {
            **config.model_dump(mode="json"),
            "deploy": {**config.deploy.model_dump(mode="json"), "storage": {"uri": "s3://b/p"}},
        }
    )
    build_manifests(shared)


def test_submit_takes_the_storage_choice_as_a_flag(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("deploy:\n  worker: {gpu: 0, tolerations: []}\n")
    assert main(["render", "-c", str(cfg), "--storage", "s3://results/etth1"]) == 0
    out = capsys.readouterr().out
    assert "resources.storage_path=s3://results/etth1" in out and "claimName" not in out
    assert main(["render", "-c", str(cfg), "--storage", "team-results"]) == 0
    assert "claimName: team-results" in capsys.readouterr().out


@pytest.mark.parametrize(
    "uri", ["s3://b/p?endpoint_override=minio:9000&scheme=http", "s3://b/$(id)", "s3://b/a b"]
)
def test_a_storage_uri_the_shell_would_split_is_refused(uri: str) -> None:
    """m1: KubeRay runs the entrypoint through bash (and Ray through sh): `&` split the URI."""
    with pytest.raises(ConfigError, match="deploy.storage.uri"):
        parse_config({"deploy": {"storage": {"uri": uri}}})
    with pytest.raises(DeployError, match="/storage/uri"):
        render_chart({"storage": {"uri": uri}})


# --- data (B5) ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["../shared/data/ETTh1.csv", "/home/me/ETTh1.csv"])
def test_a_laptop_data_path_is_refused_with_the_fix(path: str) -> None:
    """B5: the laptop's path was copied into the ConfigMap and failed in the pod."""
    config = parse_config({**_CPU, "data": {"path": path}})
    with pytest.raises(DeployError) as caught:
        build_manifests(config)
    line = caught.value.one_line()
    assert "\n" not in line and "data.path" in line
    assert "s3://" in line and "deploy.data.claim_name" in line and "deploy.data.in_image" in line
    with pytest.raises(DeployError, match="config.data.path"):
        render_chart({"config": {"data": {"path": path}}})


def test_data_from_a_volume_an_object_store_or_the_image_passes() -> None:
    volume = parse_config(
        {
            **_CPU,
            "data": {"path": "/data/ETTh1.csv"},
            "deploy": {**_CPU["deploy"], "data": {"claim_name": "datasets"}},
        }
    )
    head = _kinds(build_manifests(volume))["RayJob"]["spec"]["rayClusterSpec"]["headGroupSpec"]
    pod = head["template"]["spec"]
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in pod["containers"][0][
        "volumeMounts"
    ]
    assert {
        "name": "data",
        "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True},
    } in pod["volumes"]
    render_chart(
        {"data": {"claimName": "datasets"}, "config": {"data": {"path": "/data/ETTh1.csv"}}}
    )
    render_chart({"data": {"inImage": True}, "config": {"data": {"path": "/opt/data/ETTh1.csv"}}})
    build_manifests(
        parse_config(
            {
                **_CPU,
                "data": {"path": "/opt/ETTh1.csv"},
                "deploy": {**_CPU["deploy"], "data": {"in_image": True}},
            }
        )
    )


# --- resume (M4) -------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "flag"), [("tune", "--study-name"), ("train", "--run-name")])
def test_the_entrypoint_resumes_the_study_or_run_named_after_the_rayjob(
    mode: str, flag: str
) -> None:
    """M4: each retry started a new timestamped study from zero."""
    config = parse_config(
        {**_CPU, "deploy": {**_CPU["deploy"], "name": "etth1-nightly", "mode": mode}}
    )
    python = _kinds(build_manifests(config))["RayJob"]["spec"]["entrypoint"]
    helm = _kinds(render_chart({"mode": mode, "name": "etth1-nightly"}))["RayJob"]["spec"][
        "entrypoint"
    ]
    for entrypoint in (python, helm):
        words = shlex.split(entrypoint)
        assert words[words.index(flag) + 1] == "etth1-nightly"
        assert "--resume-if-exists" in words
