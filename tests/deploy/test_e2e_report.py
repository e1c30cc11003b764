"""scripts/e2e-cluster.py names each failed scenario and why in its own output: CI keeps that
output's tail, not the log the full pytest output goes to."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCENARIOS = """
import pytest

def describe():
    return ("rayjob e2e3: {\\"jobStatus\\": \\"FAILED\\"}\\npod e2e3-head on node-1: Running"
            "\\n--- log e2e3-head/ray-head:\\n" + "noise\\n" * 50 + "event e2e3-head: BackOff: x")

def test_passes():
    pass

def test_fails():
    assert False, "the study ended before the head loss\\n" + describe()

@pytest.fixture
def cluster():
    raise RuntimeError("kubelet node-1 not Ready after 60s")

def test_errs(cluster):
    pass
"""


def _load_script():
    spec = importlib.util.spec_from_file_location("e2e_cluster", REPO / "scripts/e2e-cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


e2e_cluster = _load_script()


def test_failed_and_erred_scenarios_are_named_with_their_reason(tmp_path: Path) -> None:
    (tmp_path / "test_scenarios.py").write_text(SCENARIOS)
    junit = tmp_path / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    *e2e_cluster.UNTRUNCATED, f"--junitxml={junit}", "test_scenarios.py"],
                   cwd=tmp_path, capture_output=True, check=False)  # fmt: skip
    lines = e2e_cluster.failures(junit)
    assert lines[0].startswith("e2e-cluster: FAILED test_fails (")
    assert "  AssertionError: the study ended before the head loss" in lines
    assert '  rayjob e2e3: {"jobStatus": "FAILED"}' in lines
    assert "  pod e2e3-head on node-1: Running" in lines
    assert "  event e2e3-head: BackOff: x" in lines
    assert "noise" not in lines and "  noise" not in lines  # the log tails stay in the log
    assert any(line.startswith("e2e-cluster: ERROR test_errs (") for line in lines)
    assert any("kubelet node-1 not Ready after 60s" in line for line in lines)
    assert not any("test_passes" in line for line in lines)


def test_no_report_no_lines(tmp_path: Path) -> None:
    """pytest that never started (a collection crash) leaves no XML: the summary line says it."""
    assert e2e_cluster.failures(tmp_path / "missing.xml") == []
