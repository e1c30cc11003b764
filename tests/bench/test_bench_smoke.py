"""Every benchmark's ``--smoke`` mode, run through ``bench/run_all.py`` so neither rots.

These check that each script runs end to end on tiny synthetic data and writes a well-formed
result; they never gate on speed (the numbers on a shared CI box mean nothing).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_ALL = REPO_ROOT / "bench" / "run_all.py"


def _run(name: str, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, str(RUN_ALL), "--smoke", "--only", name, "--out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=900, check=False,
    )
    assert done.returncode == 0, f"{name} --smoke failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    files = sorted(out.glob("*.smoke.json"))
    assert len(files) == 1, f"expected one smoke result, found {[f.name for f in files]}"
    result = json.loads(files[0].read_text())
    assert result["smoke"] is True
    assert {"date_utc", "command", "cpu", "cores", "torch"} <= set(result["machine"])
    return result


def _positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_run_all_lists_every_benchmark_script() -> None:
    listed = subprocess.run(
        [sys.executable, str(RUN_ALL), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("run_all", RUN_ALL)
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    assert listed == list(module.BENCHMARKS)
    for name, (script, *_rest) in module.BENCHMARKS.items():
        assert (REPO_ROOT / "bench" / script).exists(), f"{name}: bench/{script} is missing"


@pytest.mark.ray
def test_throughput_smoke(tmp_path: Path) -> None:
    result = _run("throughput", tmp_path)
    (row,) = result["summary"]
    assert _positive(row["plain_win_s"]) and _positive(row["tsdl_win_s"])
    assert row["ratio"] == pytest.approx(row["tsdl_win_s"] / row["plain_win_s"])
    threads = {r["threads"] for r in result["runs"]}
    assert threads == {row["threads"]}, "tsdl worker and plain loop must use the same torch thread count"


def test_memory_scaling_smoke(tmp_path: Path) -> None:
    result = _run("memory", tmp_path)
    small, large = result["cases"]
    assert large["rows"] == 10 * small["rows"] and large["train_windows"] > small["train_windows"]
    assert all(_positive(case["epoch_peak_mb"]) for case in result["cases"])
    # The study's point: nothing per window is allocated, so the peak is far below what
    # materializing every window would take.
    assert large["epoch_peak_mb"] < large["materialized_mb"] + large["raw_mb"] * 20 + 64
    assert (tmp_path / "memory_scaling.smoke.png").stat().st_size > 0


@pytest.mark.ray
def test_startup_smoke(tmp_path: Path) -> None:
    result = _run("startup", tmp_path)
    (row,) = result["summary"]
    phases = ["interpreter", "imports", "prepare_data", "ray_init", "build", "worker_up", "worker_setup", "first_step"]
    assert all(row[p] >= 0 for p in phases)
    assert row["total"] == pytest.approx(sum(row[p] for p in phases))
    assert row["dominant"] in phases
