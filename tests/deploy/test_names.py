"""Names: two releases and two concurrent jobs share a namespace; bad job names fail early."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy._schemas import ObjectValidator
from tsdl.config import parse_config
from tsdl.deploy import build_manifests, job_name
from tsdl.deploy.chart import render_chart
from tsdl.errors import ConfigError, DeployError

_GPU = {"resources": {"use_gpu": True}}


def _keys(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(obj["kind"], obj["metadata"]["name"]) for obj in objects}


def _claims_and_accounts(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """What the RayJobs' pods use from outside themselves."""
    used: set[tuple[str, str]] = set()
    for obj in objects:
        if obj["kind"] != "RayJob":
            continue
        cluster = obj["spec"]["rayClusterSpec"]
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
            pod = group["template"]["spec"]
            used.add(("ServiceAccount", pod["serviceAccountName"]))
            used |= {
                ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
                for v in pod["volumes"]
                if "persistentVolumeClaim" in v
            }
    return used


def test_two_releases_in_one_namespace_share_no_object(validator: ObjectValidator) -> None:
    """`helm install a` and `helm install b` in one namespace: nothing to fight over."""
    values = {
        "mlflow": {"server": {"enabled": True}},
        "storage": {"createClaim": True},
        "autoscaling": True,
    }
    a = render_chart(values, release="etth1", namespace="ml")
    b = render_chart(values, release="weather", namespace="ml")
    assert not _keys(a) & _keys(b)
    assert _claims_and_accounts(a) <= _keys(a) and _claims_and_accounts(b) <= _keys(b)
    assert [e for obj in a + b for e in validator.errors(obj)] == []
    for obj in a:
        if obj["kind"] == "PersistentVolumeClaim":  # data lives here: survives `helm uninstall`
            assert obj["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_two_submitted_jobs_share_only_the_prerequisites(validator: ObjectValidator) -> None:
    prerequisites = render_chart({"job": {"enabled": False}}, release="tsdl", namespace="ml")
    assert {kind for kind, _ in _keys(prerequisites)} == {
        "ServiceAccount",
        "Role",
        "PersistentVolumeClaim",
        "Deployment",  # the MLflow server tsdl-mlflow
        "Service",
        "NetworkPolicy",  # ... reachable only by tsdl's pods
    }
    tune = build_manifests(parse_config({**_GPU, "deploy": {"namespace": "ml"}}))
    train = build_manifests(parse_config({**_GPU, "deploy": {"namespace": "ml", "mode": "train"}}))
    assert not _keys(tune) & _keys(train)
    assert not (_keys(tune) | _keys(train)) & _keys(prerequisites)
    assert [e for obj in tune + train + prerequisites for e in validator.errors(obj)] == []
    # Deleting the train job's objects leaves everything the tune job uses.
    remaining = _keys(prerequisites) | _keys(tune)
    assert _claims_and_accounts(tune) <= remaining
    assert _claims_and_accounts(tune) == _claims_and_accounts(train)


def test_job_releases_default_to_the_namespace_prerequisites(validator: ObjectValidator) -> None:
    """N12: every `helm install` of a job created its own MLflow server and two kept claims
    (120 GiB left behind per experiment, runs split across servers). By default a job release
    now mounts the prerequisites' tsdl-results and logs to their tsdl-mlflow, as `tsdl submit`
    does; the prerequisites release still creates both, and values can still ask for its own."""
    prerequisites = _keys(render_chart({"job": {"enabled": False}}, release="tsdl", namespace="ml"))
    assert {
        ("PersistentVolumeClaim", "tsdl-results"),
        ("Deployment", "tsdl-mlflow"),
    } <= prerequisites
    submitted = build_manifests(parse_config({**_GPU, "deploy": {"namespace": "ml"}}))
    submitted_env = {
        e["name"]: e.get("value")
        for e in submitted[-1]["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["env"]
    }
    for release in ("etth1", "weather"):
        objects = render_chart({}, release=release, namespace="ml")
        kinds = {kind for kind, _ in _keys(objects)}
        assert not kinds & {"PersistentVolumeClaim", "Deployment", "Service"}, release
        assert ("PersistentVolumeClaim", "tsdl-results") in _claims_and_accounts(objects)
        job = next(o for o in objects if o["kind"] == "RayJob")
        env = {
            e["name"]: e.get("value")
            for e in job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["env"]
        }
        assert (
            env["MLFLOW_TRACKING_URI"]
            == submitted_env["MLFLOW_TRACKING_URI"]
            == "http://tsdl-mlflow:5000"
        )
        assert [e for obj in objects for e in validator.errors(obj)] == []
    own = _keys(
        render_chart(
            {"storage": {"createClaim": True}, "mlflow": {"server": {"enabled": True}}},
            release="etth1",
            namespace="ml",
        )
    )
    assert {("PersistentVolumeClaim", "etth1-results"), ("Deployment", "etth1-mlflow")} <= own


def test_a_job_release_can_use_the_namespace_prerequisites() -> None:
    shared = {
        "rbac": {"create": False},
        "serviceAccount": "tsdl",
        "storage": {"createClaim": False, "claimName": "tsdl-results"},
        "mlflow": {"server": {"enabled": False}, "trackingUri": "http://tsdl-mlflow:5000"},
    }
    objects = render_chart(shared, release="etth1", namespace="ml")
    assert {kind for kind, _ in _keys(objects)} == {"ConfigMap", "NetworkPolicy", "RayJob"}
    assert _claims_and_accounts(objects) == {
        ("ServiceAccount", "tsdl"),
        ("PersistentVolumeClaim", "tsdl-results"),
    }


@pytest.mark.parametrize("name", ["2024-etth1", "9lives"])
def test_a_job_name_must_start_with_a_letter_everywhere(name: str) -> None:
    with pytest.raises(ConfigError) as config_error:
        parse_config({"deploy": {"name": name}})
    assert "deploy.name" in config_error.value.one_line()
    with pytest.raises(DeployError) as derived:
        job_name(parse_config({"experiment": {"name": name}}))
    assert derived.value.one_line().startswith(f"job name '{name}-tune'")
    assert "deploy.name" in derived.value.hint and "\n" not in derived.value.one_line()
    with pytest.raises(DeployError, match="/name") as schema:
        render_chart({"name": name})
    assert "\n" not in schema.value.one_line()
    with pytest.raises(DeployError, match="must start with a letter") as release:
        render_chart({}, release=name)
    assert "\n" not in release.value.one_line()


def test_render_reports_a_digit_job_name_in_one_line(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tsdl.cli.main import main

    path = tmp_path / "config.yaml"
    path.write_text("experiment:\n  name: 2024-etth1\nresources:\n  use_gpu: true\n")
    assert main(["render", "-c", str(path)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: job name '2024-etth1-tune'") and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    "image", ["Registry/TSDL:1", "tsdl:has space", "tsdl::1", "https://ghcr.io/tsdl/tsdl:1"]
)
def test_bad_image_references_fail_at_render_and_install(image: str) -> None:
    with pytest.raises(ConfigError, match="deploy.image"):
        parse_config({"deploy": {"image": image}})
    with pytest.raises(DeployError, match="/image"):
        render_chart({"image": image})


@pytest.mark.parametrize(
    "image",
    [
        "tsdl:e2e",
        "ghcr.io/tsdl/tsdl:0.1.0-gpu",
        "localhost:5000/team/tsdl:pr-7",
        "registry.example.com/tsdl@sha256:" + "a" * 64,
    ],
)
def test_good_image_references_pass(image: str) -> None:
    assert parse_config({"deploy": {"image": image}}).deploy.image == image
    render_chart({"image": image})
