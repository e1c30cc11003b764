"""k8s/: generated from the chart's defaults, never hand-edited, valid against the CRDs, and
split so that deleting one job's file never deletes what another job uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy._schemas import ObjectValidator
from tsdl.config import parse_config
from tsdl.deploy.chart import K8S_DIR, K8S_VARIANTS, k8s_manifest_text

FILES = sorted(K8S_VARIANTS)


def test_k8s_holds_exactly_the_generated_files() -> None:
    assert sorted(p.name for p in K8S_DIR.glob("*.yaml")) == FILES


@pytest.mark.parametrize("filename", FILES)
def test_k8s_has_not_drifted_from_the_chart(filename: str) -> None:
    assert (K8S_DIR / filename).read_text() == k8s_manifest_text(filename), (
        f"k8s/{filename} differs from the chart; run `python -m tsdl.deploy.chart`"
    )


@pytest.mark.parametrize("filename", FILES)
def test_k8s_objects_validate(filename: str, validator: ObjectValidator) -> None:
    objects = list(yaml.safe_load_all((K8S_DIR / filename).read_text()))
    assert [e for obj in objects for e in validator.errors(obj)] == []


def _objects(filename: str) -> list[dict]:
    return list(yaml.safe_load_all((K8S_DIR / filename).read_text()))


def _keys(objects: list[dict]) -> set[tuple[str, str]]:
    return {(obj["kind"], obj["metadata"]["name"]) for obj in objects}


@pytest.mark.parametrize("filename", FILES)
def test_k8s_files_name_no_namespace_and_no_helm(filename: str) -> None:
    """`kubectl apply -n NS -f` works in any namespace; nothing claims Helm manages it."""
    text = (K8S_DIR / filename).read_text()
    for obj in _objects(filename):
        assert "namespace" not in obj["metadata"], obj["metadata"]["name"]
    assert "managed-by: Helm" not in text and "helm.sh/resource-policy" not in text


def test_prerequisites_hold_the_shared_objects_and_no_job() -> None:
    assert _keys(_objects("prerequisites.yaml")) == {
        ("ServiceAccount", "tsdl"),
        ("Role", "tsdl-submitter"),
        ("PersistentVolumeClaim", "tsdl-results"),
        ("PersistentVolumeClaim", "tsdl-mlflow"),
        ("Deployment", "tsdl-mlflow"),
        ("Service", "tsdl-mlflow"),
        ("NetworkPolicy", "tsdl-mlflow"),
    }


@pytest.mark.parametrize("filename", ["rayjob-tune.yaml", "rayjob-train.yaml"])
def test_job_file_uses_the_prerequisites_and_owns_no_shared_object(filename: str) -> None:
    objects = _objects(filename)
    kinds = [obj["kind"] for obj in objects]
    assert kinds == ["ConfigMap", "NetworkPolicy", "RayJob"]
    job = objects[-1]
    mode = filename.removeprefix("rayjob-").removesuffix(".yaml")
    assert job["spec"]["entrypoint"].startswith(f"tsdl {mode} -c /etc/tsdl/config.yaml")
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    volumes = {v["name"]: v for v in head["volumes"]}
    assert ("ConfigMap", volumes["tsdl-config"]["configMap"]["name"]) in _keys(objects)
    prerequisites = _keys(_objects("prerequisites.yaml"))
    claim = volumes["results"]["persistentVolumeClaim"]["claimName"]
    assert ("PersistentVolumeClaim", claim) in prerequisites
    assert ("ServiceAccount", head["serviceAccountName"]) in prerequisites
    configmap = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    config = parse_config(yaml.safe_load(configmap["data"]["config.yaml"]), source=filename)
    assert config.resources.use_gpu


def test_deleting_one_job_file_leaves_the_other_jobs_storage() -> None:
    """`kubectl delete -f k8s/rayjob-train.yaml` while the tune job runs."""
    applied = {
        name: _keys(_objects(name))
        for name in ("prerequisites.yaml", "rayjob-tune.yaml", "rayjob-train.yaml")
    }
    assert not applied["rayjob-tune.yaml"] & applied["rayjob-train.yaml"]  # no clash
    remaining = set().union(*applied.values()) - applied["rayjob-train.yaml"]
    tune = _objects("rayjob-tune.yaml")[-1]["spec"]["rayClusterSpec"]
    for group in [tune["headGroupSpec"], *tune["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        assert ("ServiceAccount", pod["serviceAccountName"]) in remaining
        for volume in pod["volumes"]:
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                assert ("PersistentVolumeClaim", claim) in remaining
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in remaining


def test_drift_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tsdl.deploy import chart

    for filename in FILES:
        (tmp_path / filename).write_text(k8s_manifest_text(filename))
    monkeypatch.setattr(chart, "K8S_DIR", tmp_path)
    assert chart.main(["--check"]) == 0
    stale = tmp_path / "prerequisites.yaml"
    stale.write_text(stale.read_text().replace("name: tsdl-results", "name: tsdl-results-2"))
    assert chart.main(["--check"]) == 1
    assert chart.main([]) == 0 and chart.main(["--check"]) == 0


def test_prerequisites_mlflow_accepts_its_service_name_in_any_namespace() -> None:
    """N10: the file has no namespace, so --allowed-hosts must not name the one it was rendered in;
    checked with MLflow's own Host-header matcher."""
    from mlflow.server.security_utils import is_allowed_host_header

    server = next(o for o in _objects("prerequisites.yaml") if o["kind"] == "Deployment")
    (container,) = server["spec"]["template"]["spec"]["containers"]
    (flag,) = [a for a in container["command"] if a.startswith("--allowed-hosts=")]
    allowed = flag.removeprefix("--allowed-hosts=").split(",")
    for host in ("tsdl-mlflow:5000", "tsdl-mlflow.team-a.svc:5000", "tsdl-mlflow.ml.svc.cluster.local:5000",
                 "localhost:5000"):
        assert is_allowed_host_header(allowed, host), host
    for host in ("evil.example.com", "tsdl-mlflow.example.com:5000", "other.team-a.svc:5000"):
        assert not is_allowed_host_header(allowed, host), host
