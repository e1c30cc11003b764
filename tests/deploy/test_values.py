"""`tsdl render --values` layers over a preset: `helm install -f ci/<preset> -f my-values.yaml`.

Helm's CLI merges `-f` files left to right (right-most wins, maps merged key by key) and then
coalesces them with values.yaml, where a `null` deletes the key. `helm_cli_merge` is that first
step (tests/deploy/_helm_cli.py); the coalescing, schema and templates are the real Helm engine
(helm-python-sdk).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy._helm_cli import helm_cli_merge as _helm_cli_merge
from tests.deploy._presets import load_preset
from tests.deploy._schemas import ObjectValidator
from tsdl.cli.main import main
from tsdl.config import parse_config
from tsdl.deploy import chart_values
from tsdl.deploy.chart import CHART_DIR, render_chart
from tsdl.deploy.sizing import parse_quantity

# A typical user config: what to train, and one deployment choice.
USER_CONFIG: dict[str, Any] = {
    "experiment": {"name": "etth1-nightly"},
    "training": {"max_epochs": 3},
    "deploy": {"image": "registry.example.com/tsdl:1.2.3-gpu"},
}


def _render_values(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: dict) -> dict:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["render", "-c", str(path), "--values"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def _volumes(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """All but the config volume, whose ConfigMap is named after the job."""
    return [v for v in pod["volumes"] if v["name"] != "tsdl-config"]


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


def test_render_values_holds_only_what_the_config_sets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = _render_values(tmp_path, capsys, USER_CONFIG)
    assert values == {
        "image": "registry.example.com/tsdl:1.2.3-gpu",
        "name": "etth1-nightly-tune",
        "config": {"experiment": {"name": "etth1-nightly"}, "training": {"max_epochs": 3}},
    }


def test_flags_count_as_set_and_defaults_stay_out() -> None:
    from tsdl.deploy import with_overrides

    config = with_overrides(parse_config(USER_CONFIG), workers=2, namespace="ml")
    values = chart_values(config)
    assert values["worker"] == {"replicas": 2, "minReplicas": 2, "maxReplicas": 2}
    assert "namespace" not in values and "gang" not in values and "storage" not in values
    assert None not in _leaves(values)


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    return [node]


@pytest.mark.parametrize("preset", sorted(p.name for p in (CHART_DIR / "ci").glob("*-values.yaml")))
def test_every_preset_survives_the_rendered_values(
    preset: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    validator: ObjectValidator,
) -> None:
    preset_values = load_preset(preset)
    mine = _render_values(tmp_path, capsys, USER_CONFIG)
    layered = _by_kind(render_chart(_helm_cli_merge(preset_values, mine), release="etth1"))
    alone = _by_kind(render_chart(preset_values, release="etth1"))
    assert [e for obj in layered.values() for e in validator.errors(obj)] == []
    ours, theirs = layered["RayJob"], alone["RayJob"]
    # The preset's cluster shape, scheduling and deadlines are untouched ...
    assert ours["metadata"]["labels"] == theirs["metadata"]["labels"]
    for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds", "ttlSecondsAfterFinished"):
        assert ours["spec"].get(key) == theirs["spec"].get(key)
    ours_group = ours["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    theirs_group = theirs["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    for key in ("replicas", "minReplicas", "maxReplicas", "rayStartParams"):
        assert ours_group[key] == theirs_group[key]
    ours_pod, theirs_pod = ours_group["template"]["spec"], theirs_group["template"]["spec"]
    assert _volumes(ours_pod) == _volumes(theirs_pod)  # shm and the claim
    assert ours_pod["containers"][0]["resources"] == theirs_pod["containers"][0]["resources"]
    assert ours_pod.get("nodeSelector") == theirs_pod.get("nodeSelector")
    assert set(layered) == set(alone)  # the claim and the MLflow server are still created
    # ... and the user's settings are applied on top.
    assert ours_pod["containers"][0]["image"] == "registry.example.com/tsdl:1.2.3-gpu"
    assert ours["metadata"]["name"] == "etth1-nightly-tune"
    config = yaml.safe_load(layered["ConfigMap"]["data"]["config.yaml"])
    assert config["training"]["max_epochs"] == 3
    preset_resources = preset_values["config"]["resources"]
    assert {k: config["resources"][k] for k in preset_resources} == preset_resources


def test_multi_node_preset_keeps_kueue_two_by_four_gpus_shm_and_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The review's example (B4): the multi-node preset used to come out as 1x1 GPU, no Kueue."""
    preset = load_preset("multi-node-gpu-values.yaml")
    mine = _render_values(tmp_path, capsys, USER_CONFIG)
    kinds = _by_kind(render_chart(_helm_cli_merge(preset, mine), release="etth1"))
    job = kinds["RayJob"]
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    container = group["template"]["spec"]["containers"][0]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert group["replicas"] == 2 and container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert container["resources"]["limits"]["memory"] == "192Gi"
    shm = next(v for v in group["template"]["spec"]["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["sizeLimit"] == "64Gi"
    assert job["spec"]["activeDeadlineSeconds"] == 86400
    assert kinds["PersistentVolumeClaim"]["metadata"]["name"] == "etth1-results"
    config = yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"])
    assert config["resources"]["use_gpu"] is True and config["resources"]["num_workers"] == 8


def _requests(values: dict) -> dict[str, tuple[float, float, int]]:
    job = next(o for o in render_chart(values) if o["kind"] == "RayJob")
    cluster = job["spec"]["rayClusterSpec"]
    out = {}
    for role, group in (("head", cluster["headGroupSpec"]), ("worker", cluster["workerGroupSpecs"][0])):
        amounts = group["template"]["spec"]["containers"][0]["resources"]["requests"]
        out[role] = (
            parse_quantity(amounts["cpu"]),
            parse_quantity(amounts["memory"]) / 1024**3,
            int(amounts.get("nvidia.com/gpu", 0)),
        )
    return out


def test_gpu_presets_need_no_node_label_and_state_their_node_size_truly() -> None:
    """N4: nvidia.com/gpu.present is set only by GPU Feature Discovery (not on GKE's managed GPU
    pools, nor on EKS with only the device plugin): the presets rely on the GPU request, and the
    node size their comment states is what their pods request."""
    single_text = (CHART_DIR / "ci" / "single-gpu-values.yaml").read_text()
    multi_text = (CHART_DIR / "ci" / "multi-node-gpu-values.yaml").read_text()
    for text in (single_text, multi_text):
        assert "gpu.present" not in text.replace("# ", "")
        for job_text in yaml.safe_load_all(text):
            for role in ("head", "worker"):
                assert "nodeSelector" not in (job_text.get(role) or {})
    single = _requests(load_preset("single-gpu-values.yaml"))
    cpu = single["head"][0] + single["worker"][0]
    mem = single["head"][1] + single["worker"][1]
    assert f"head + worker request {cpu:g} CPU and {mem:g}Gi" in " ".join(single_text.replace("#", "").split())
    assert mem * 1024**3 <= 0.93 * 64e9  # fits a 64 GB machine's allocatable (GKE/EKS reserve ~7%)
    multi = _requests(load_preset("multi-node-gpu-values.yaml"))
    cpu, mem, gpu = multi["worker"]
    stated = " ".join(multi_text.replace("#", "").split())
    assert f"each worker pod requests {cpu:g} CPU, {mem:g}Gi and {gpu} GPUs" in stated
    assert f"the head ({multi['head'][0]:g} CPU, {multi['head'][1]:g}Gi)" in stated
