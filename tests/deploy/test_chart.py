"""helm/tsdl: lint, every preset renders and validates, bad values fail early and readably."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.deploy._presets import load_preset
from tests.deploy._schemas import ObjectValidator
from tsdl import __version__
from tsdl.config import DeployConfig, parse_config
from tsdl.deploy.chart import CHART_DIR, render_chart
from tsdl.deploy.values import deploy_values
from tsdl.errors import DeployError

PRESETS = sorted(p.name for p in (CHART_DIR / "ci").glob("*-values.yaml"))
# Feature switches beyond the presets, each rendered and validated like a preset.
FEATURES: dict[str, dict[str, Any]] = {
    "autoscaling": {
        "autoscaling": True,
        "worker": {"minReplicas": 0, "maxReplicas": 4},
        "storage": {"uri": "s3://bucket/tsdl"},
    },
    "object-store": {
        "storage": {"uri": "s3://bucket/tsdl"},
        "mlflow": {"credentialsSecret": "aws"},
    },
    "volcano": {"gang": {"scheduler": "volcano", "queue": "research"}},
    "mlflow-server": {"mlflow": {"server": {"enabled": True}}, "imagePullSecrets": ["registry"]},
    "train-with-deadline": {"mode": "train", "activeDeadlineSeconds": 7200, "name": "nightly"},
}


def _preset(name: str) -> dict[str, Any]:
    return load_preset(name)


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


def test_presets_exist() -> None:
    assert PRESETS == [
        "kind-cpu-values.yaml",
        "multi-node-gpu-values.yaml",
        "single-gpu-values.yaml",
    ]


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_helm_lint_is_clean(preset: str | None) -> None:
    report = helm.lint(str(CHART_DIR), _preset(preset) if preset else None, strict=True)
    assert report["errors"] == [] and report["messages"] == [], report


@pytest.mark.parametrize("case", [*PRESETS, *FEATURES])
def test_rendered_objects_validate(case: str, validator: ObjectValidator) -> None:
    values = _preset(case) if case in PRESETS else FEATURES[case]
    objects = render_chart(values, release="tsdl-ci", namespace="ml")
    kinds = _by_kind(objects)
    assert len(kinds["RayJob"]) == 1 and len(kinds["ConfigMap"]) == 1
    assert [e for obj in objects for e in validator.errors(obj)] == []


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_configs_are_valid_tsdl_configs(preset: str) -> None:
    config = parse_config(_preset(preset).get("config", {}), source=preset)
    worker = {
        **yaml.safe_load((CHART_DIR / "values.yaml").read_text())["worker"],
        **_preset(preset).get("worker", {}),
    }
    assert config.resources.use_gpu == (worker["gpu"] > 0)


def test_the_rendered_rayjob_follows_the_values(validator: ObjectValidator) -> None:
    kinds = _by_kind(render_chart(_preset("multi-node-gpu-values.yaml"), release="big"))
    job = kinds["RayJob"][0]
    worker = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    container = worker["template"]["spec"]["containers"][0]
    assert worker["replicas"] == 2
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}} in (
        worker["template"]["spec"]["volumes"]
    )
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert job["spec"]["activeDeadlineSeconds"] == 86400
    assert job["spec"]["entrypoint"].startswith("tsdl tune -c /etc/tsdl/config.yaml --address auto")
    # Its own ReadWriteMany claim; MLflow is the namespace's shared tsdl-mlflow (N12).
    assert [c["metadata"]["name"] for c in kinds["PersistentVolumeClaim"]] == ["big-results"]
    assert "Deployment" not in kinds


def test_autoscaling_grants_the_head_alone_a_token_and_the_chart_no_ray_role() -> None:
    """KubeRay creates and binds the autoscaler's Role itself; the chart's only Role is the
    submitter's, bound to nobody unless rbac.submitters names someone."""
    kinds = _by_kind(render_chart(FEATURES["autoscaling"], release="auto"))
    cluster = kinds["RayJob"][0]["spec"]["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["template"]["spec"]["automountServiceAccountToken"] is True
    assert (
        cluster["workerGroupSpecs"][0]["template"]["spec"]["automountServiceAccountToken"] is False
    )
    assert [r["metadata"]["name"] for r in kinds["Role"]] == ["auto-submitter"]
    assert "RoleBinding" not in kinds
    rules = kinds["Role"][0]["rules"]
    assert {r for rule in rules for r in rule["resources"]} == {
        "rayjobs",
        "configmaps",
        "networkpolicies",
        "serviceaccounts",
        "persistentvolumeclaims",
        "pods",
        "pods/log",
        "events",  # `tsdl status` names what a stuck pod waits on
    }
    assert not {v for rule in rules for v in rule["verbs"]} & {"patch", "escalate", "bind", "*"}
    team = [{"kind": "Group", "name": "team-a", "apiGroup": "rbac.authorization.k8s.io"}]
    bound = _by_kind(render_chart({"rbac": {"submitters": team}}, release="auto"))
    assert bound["RoleBinding"][0]["subjects"] == team


def test_every_container_is_locked_down_and_sized() -> None:
    values = {
        **FEATURES["mlflow-server"],
        "autoscaling": True,
        "worker": {"maxReplicas": 2},
        "storage": {"accessModes": ["ReadWriteMany"], "storageClassName": "efs-sc"},
    }
    pods = [pod for obj in render_chart(values, release="sec") for pod in _pod_specs(obj)]
    assert len(pods) == 4  # submitter, head, worker group, MLflow server
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in [*pod["containers"], *pod.get("initContainers", [])]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert set(container["resources"]["requests"]) >= {"cpu", "memory"}
            assert container["resources"]["limits"] == container["resources"]["requests"]


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj["kind"] == "Deployment":
        return [obj["spec"]["template"]["spec"]]
    if obj["kind"] == "RayJob":
        cluster = obj["spec"]["rayClusterSpec"]
        return [
            obj["spec"]["submitterPodTemplate"]["spec"],
            cluster["headGroupSpec"]["template"]["spec"],
            *(group["template"]["spec"] for group in cluster["workerGroupSpecs"]),
        ]
    return []


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mode": "serve"}, "/mode"),
        ({"worker": {"gpu": -1}}, "/worker/gpu"),
        ({"worker": {"cpu": "lots"}}, "/worker/cpu"),
        ({"storage": {"uri": "bucket-without-scheme"}}, "/storage/uri"),
        ({"name": "x" * 48}, "/name"),
        ({"replicas": 2}, "'replicas' not allowed"),
        ({"autoscaling": True, "gang": {"scheduler": "kueue", "queue": "q"}}, "Kueue admits"),
        ({"gang": {"scheduler": "volcano"}}, "needs a queue name"),
        ({"worker": {"replicas": 3}}, "minReplicas <= replicas <= maxReplicas"),
        ({"worker": {"gpu": 1}, "config": {"resources": {"use_gpu": False}}}, "config.resources.use_gpu"),
    ],
)
def test_bad_values_fail_at_install_time_with_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(DeployError) as caught:
        render_chart(values)
    assert message in caught.value.message
    assert "\n" not in caught.value.one_line()


def test_validator_catches_a_broken_rayjob(validator: ObjectValidator) -> None:
    job = _by_kind(render_chart())["RayJob"][0]
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] = "two"
    job["spec"]["shutdownAfterJobFinish"] = True  # typo: the API server would prune it silently
    job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0][
        "resources"
    ]["limits"]["cpu"] = [2]
    errors = validator.errors(job)
    assert any("workerGroupSpecs.0.replicas" in e and "integer" in e for e in errors)
    assert any("shutdownAfterJobFinish" in e for e in errors)
    assert any("limits.cpu" in e for e in errors)


def test_validator_catches_a_broken_core_object(validator: ObjectValidator) -> None:
    claim = _by_kind(render_chart({"job": {"enabled": False}}))["PersistentVolumeClaim"][0]
    claim["spec"]["accessModes"] = "ReadWriteMany"
    assert validator.errors(claim)


def test_values_defaults_equal_deploy_config_defaults() -> None:
    chart_defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    ours = deploy_values(DeployConfig())

    def check(expected: dict[str, Any], actual: dict[str, Any], path: str) -> None:
        for key, value in expected.items():
            assert key in actual, f"values.yaml lacks {path}{key}"
            if isinstance(value, dict) and value and isinstance(actual[key], dict):
                check(value, actual[key], f"{path}{key}.")
            else:
                assert actual[key] == value, (
                    f"{path}{key}: values.yaml {actual[key]!r} != {value!r}"
                )

    check(ours, chart_defaults, "")


def test_schema_accepts_what_deploy_config_accepts() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert set(deploy_values(DeployConfig())) <= set(schema["properties"])
    with helm.Chart.load(str(CHART_DIR)) as chart:
        chart.validate_schema(deploy_values(DeployConfig()))


def test_chart_versions_follow_the_package() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    assert DeployConfig().image.endswith(f":{__version__}-gpu")


def test_readme_documents_every_value() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.MULTILINE))
    assert _leaf_keys(yaml.safe_load((CHART_DIR / "values.yaml").read_text())) <= documented


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in values.items():
        if isinstance(value, dict) and value and key not in {"rayStartParams", "config", "operatorPodLabels"}:
            keys |= _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def test_notes_tell_how_to_follow_the_job() -> None:
    with helm.Chart.load(str(CHART_DIR)) as chart:
        notes = chart.render(values={}, name="demo", namespace="ml")["tsdl/templates/NOTES.txt"]
    for needle in ("kubectl get rayjob demo -n ml", "tsdl logs demo", "8265:8265", "5000:5000"):
        assert needle in notes
    assert "jsonpath='{.data.auth_token}'" in notes  # the dashboard asks for the Ray token
    with helm.Chart.load(str(CHART_DIR)) as chart:
        notes = chart.render(values={"job": {"enabled": False}}, name="tsdl", namespace="ml")[
            "tsdl/templates/NOTES.txt"
        ]
    assert "ServiceAccount tsdl" in notes and "PersistentVolumeClaim tsdl-results" in notes
    assert "tsdl submit -c config.yaml -n ml" in notes and "RayJob" not in notes


def test_chart_dir_is_complete() -> None:
    for name in ("Chart.yaml", "values.yaml", "values.schema.json", "README.md", ".helmignore"):
        assert (Path(CHART_DIR) / name).is_file(), name
