"""k8s/: generated from the chart's defaults, never hand-edited, and valid against the CRDs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy._schemas import ObjectValidator
from tsdl.config import parse_config
from tsdl.deploy.chart import K8S_DIR, K8S_VARIANTS, k8s_manifest_text

pytest.importorskip("helm_python", reason="helm-python-sdk is in the dev extra")

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


@pytest.mark.parametrize("filename", FILES)
def test_k8s_file_is_self_contained_for_kubectl_apply(filename: str) -> None:
    objects = list(yaml.safe_load_all((K8S_DIR / filename).read_text()))
    kinds = [obj["kind"] for obj in objects]
    assert kinds[-1] == "RayJob" and kinds.count("RayJob") == 1
    job = objects[-1]
    mode = filename.removeprefix("rayjob-").removesuffix(".yaml")
    assert job["spec"]["entrypoint"].startswith(f"tsdl {mode} -c /etc/tsdl/config.yaml")
    # Everything the RayJob references is in the same file, before it.
    by_kind = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    volumes = {v["name"]: v for v in head["volumes"]}
    assert ("ConfigMap", volumes["tsdl-config"]["configMap"]["name"]) in by_kind
    assert (
        "PersistentVolumeClaim",
        volumes["results"]["persistentVolumeClaim"]["claimName"],
    ) in by_kind
    assert ("ServiceAccount", head["serviceAccountName"]) in by_kind
    # The mounted config is a valid tsdl config.
    configmap = next(obj for obj in objects if obj["kind"] == "ConfigMap")
    config = parse_config(yaml.safe_load(configmap["data"]["config.yaml"]), source=filename)
    assert config.resources.use_gpu


def test_drift_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tsdl.deploy import chart

    for filename in FILES:
        (tmp_path / filename).write_text(k8s_manifest_text(filename))
    monkeypatch.setattr(chart, "K8S_DIR", tmp_path)
    assert chart.main(["--check"]) == 0
    stale = tmp_path / FILES[0]
    stale.write_text(
        stale.read_text().replace("ttlSecondsAfterFinished: 3600", "ttlSecondsAfterFinished: 60")
    )
    assert chart.main(["--check"]) == 1
    assert chart.main([]) == 0 and chart.main(["--check"]) == 0
