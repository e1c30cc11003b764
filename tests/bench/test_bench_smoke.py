"""Every benchmark's ``--smoke`` mode, run through ``bench/run_all.py`` so neither rots.

These check that each script runs end to end on tiny synthetic data and writes a well-formed
result; they never gate on speed (the numbers on a shared CI box mean nothing).
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.scripts import bench_script

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_ALL = REPO_ROOT / "bench" / "run_all.py"


def _run(name: str, out: Path) -> dict:
    return _run_with_output(name, out)[0]


def _run_with_output(name: str, out: Path) -> tuple[dict, str]:
    """The script's smoke result and everything it printed (stdout then stderr)."""
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
    return result, done.stdout + done.stderr


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


@pytest.mark.slow(seconds=13)
def test_throughput_smoke(tmp_path: Path) -> None:
    """Whole epochs of the independent plain loop and of tsdl (its defaults, and the row with the
    plain row's optimizer kernel), paired per repeat; the plain DLinear was checked equal to tsdl's
    before timing (the script fails if not). MLflow's INFO lines stay out of the output."""
    result, output = _run_with_output("throughput", tmp_path)
    assert "Creating initial MLflow database tables" not in output
    (row,) = result["summary"]
    paths = ["plain", "plain+fused", "tsdl", "tsdl+fused"]
    assert [r["path"] for r in result["runs"]] == paths
    assert all(_positive(row[f"{p}_win_s"]) for p in paths)
    by = {r["path"]: r for r in result["runs"]}
    rate = {p: by[p]["windows_per_s"] for p in paths}
    assert row["tsdl+fused/plain+fused"] == pytest.approx(rate["tsdl+fused"] / rate["plain+fused"])
    assert row["plain+fused/plain"] == pytest.approx(rate["plain+fused"] / rate["plain"])
    fastest = max(paths[:2], key=rate.get)
    best = max(paths[2:], key=rate.get)
    assert (row["fastest_plain"], row["fastest_tsdl"]) == (fastest, best)
    assert row["tsdl/fastest"] == pytest.approx(rate["tsdl"] / rate[fastest])
    assert row["tsdl_best/fastest"] == pytest.approx(rate[best] / rate[fastest])
    for run in result["runs"]:  # whole epochs include the validation pass: slower than the steps alone
        assert len(run["epoch_walls_s"]) == 2 and run["windows_per_s"] < run["train_windows_per_s"]
        split = run["epoch_split_s"]  # where the counted epoch's seconds went, adding up to its wall
        assert split["train"] > 0 and split["validation"] > 0 and split["rest"] >= -1e-3
        assert sum(split.values()) == pytest.approx(run["epoch_walls_s"][1], abs=2e-3)
    assert {r["threads"] for r in result["runs"]} == {row["threads"]}, "same torch threads on both sides"
    table = (tmp_path / "throughput.smoke.md").read_text()  # the docs table, from the same numbers
    assert f"| plain+fused | {row['plain+fused_win_s']:,.0f} |" in table
    assert f"(the fastest plain row): {row['tsdl/fastest']:.2f} [" in table


def test_throughput_plain_dlinear_equals_tsdl_and_loaded_results_are_refused() -> None:
    bench_throughput = bench_script("bench_throughput")
    import torch

    from tsdl.config import parse_config
    from tsdl.losses import build_loss
    from tsdl.models import build_model

    config = parse_config({"model": {"name": "dlinear", "moving_avg": 25}})
    torch.manual_seed(0)
    ours = build_model(config.model, input_chunk_length=96, output_chunk_length=24, n_past_features=1,
                       n_future_features=0, n_static=0, loss=build_loss(config.loss))
    plain = bench_throughput.PlainDLinear(96, 24, 25)
    plain.load_state_dict(ours.state_dict())
    x = torch.randn(64, 96).cumsum(dim=1)  # trending series: the edges matter
    want = ours(x[:, :, None], x.new_zeros(64, 24, 0), x.new_zeros(64, 0))[..., 0]
    torch.testing.assert_close(plain(x), want, rtol=1e-5, atol=1e-5)
    assert bench_throughput.too_loaded(0.05, 2) is None
    assert "used 40% of the 2 cores" in bench_throughput.too_loaded(0.4, 2)
    assert "--force" in bench_throughput.too_loaded(None, 2)


_BURN = "import time\nwhile time.process_time() < 1.0: pass\nopen({done!r}, 'w').close()\ntime.sleep(0.5)"
"""One CPU-second of work, a file saying it is done, then half a second for the sampler to see it."""


def _burn(done: Path) -> str:
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(_BURN.format(done=str(done)))}"


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists()


def test_cpu_share_counts_its_own_tree_and_not_a_strangers(tmp_path: Path) -> None:
    """The quiet check's "own" CPU: a child we reap, and a grandchild orphaned before it exits (as
    Ray's workers are at shutdown: init reaps them, no cutime here holds them), but not a process
    that was never ours. Everything is CPU seconds, so it holds whatever else the machine does."""
    from bench import _common

    with _common.CpuShare(every=0.1) as reaped:
        subprocess.run(["sh", "-c", _burn(tmp_path / "a")], check=True)
    assert reaped.own >= 0.9, reaped.own

    orphan = tmp_path / "orphan"  # the shell waits until its child has burnt its second, then leaves it
    with _common.CpuShare(every=0.1) as orphaned:
        subprocess.run(["sh", "-c", f"{_burn(orphan)} & while [ ! -e {orphan} ]; do sleep 0.05; done"], check=True)
        time.sleep(1.0)  # the orphan exits, reaped by init
    assert orphaned.own >= 0.8, orphaned.own

    stranger = tmp_path / "stranger"  # double fork: never a descendant while it works
    with _common.CpuShare(every=0.1) as other:
        subprocess.run(["sh", "-c", f"({_burn(stranger)} &) ; exit 0"], check=True)
        _wait_for(stranger)
    assert other.own < 0.5 and other.busy - other.own >= 0.9, (other.own, other.busy)
    assert other.others is not None and other.others > 0


@pytest.mark.slow(seconds=15)
def test_memory_scaling_smoke(tmp_path: Path) -> None:
    result = _run("memory", tmp_path)
    small, large = result["cases"]
    assert large["rows"] == 10 * small["rows"] and large["train_windows"] > small["train_windows"]
    assert all(_positive(case["epoch_peak_mb"]) for case in result["cases"])
    # The study's point: nothing per window is allocated. Measured as what each phase adds to
    # the peak (no constant to hide behind): encoding the shard and training an epoch each add
    # less than half of what materializing the windows would (a few MiB here, ~0.5 MiB measured).
    shard_extra = large["shard_peak_mb"] - large["prepare_peak_mb"]
    epoch_extra = large["epoch_peak_mb"] - large["shard_peak_mb"]
    assert max(shard_extra, epoch_extra) < 0.5 * large["materialized_mb"], large
    assert (tmp_path / "memory_scaling.smoke.png").stat().st_size > 0


@pytest.mark.ray
@pytest.mark.slow(seconds=37)
def test_startup_smoke(tmp_path: Path) -> None:
    result = _run("startup", tmp_path)
    (row,) = result["summary"]
    phases = ["interpreter", "imports", "prepare_data", "ray_init", "setup", "first_step", "train", "evaluate"]
    assert all(row[p] >= 0 for p in phases) and row["dominant"] in phases
    assert row["path"] == "in_process" and row["ray_init"] < 1.0  # the default path starts no Ray
    assert _positive(result["cli_wall_s"])
    (trial,) = [r for r in result["runs"] if r["what"] == "trial"]
    assert (trial["trials_few"], trial["trials_many"]) == (1, 2)
    assert trial["wall_many"] > trial["steps_many"] > 0  # the step time is part of the wall time
    assert math.isfinite(result["trial_fixed_s"])


@pytest.mark.ray
@pytest.mark.slow(seconds=14)
def test_accuracy_smoke(tmp_path: Path) -> None:
    result = _run("accuracy", tmp_path)
    rows = {row["model"]: row for row in result["results"]}
    assert set(rows) == {"dlinear", "patchtst"}
    for row in rows.values():
        assert _positive(row["test_mse"]) and _positive(row["test_mae"])
        assert 1 <= row["best_epoch"] <= row["epochs"]
    # Smoke data has horizon 12, for which no paper reports a number: none may be invented.
    assert all(row["paper_mse"] is None for row in rows.values())


@pytest.mark.ray
def test_peers_smoke(tmp_path: Path) -> None:
    pytest.importorskip("neuralforecast", reason="the peers benchmark needs the `bench` extra")
    result = _run("peers", tmp_path)
    nf, ours = result["results"]
    assert (nf["framework"], ours["framework"]) == ("neuralforecast", "tsdl")
    # Both frameworks score the same test windows (every stride-1 window of the test split).
    assert nf["test_windows"] == ours["test_windows"]
    for run in (nf, ours):
        assert _positive(run["windows_per_s"]) and _positive(run["peak_rss_tree_mb"])
        assert _positive(run["test_mse"])
    assert ours["win_s_ratio"] == pytest.approx(ours["windows_per_s"] / nf["windows_per_s"])


def test_gpu_smoke_runs_on_cpu_and_cuda_mode_skips_cleanly(tmp_path: Path) -> None:
    result = _run("gpu", tmp_path)
    precisions = [row["precision"] for row in result["steps"]]
    assert precisions == ["32", "bf16-mixed"]
    assert all(_positive(row["windows_per_s"]) for row in result["steps"])
    import torch

    if not torch.cuda.is_available():
        done = subprocess.run(
            [sys.executable, str(REPO_ROOT / "bench" / "bench_gpu.py"), "--device", "cuda", "--out", str(tmp_path / "c")],
            capture_output=True, text=True, check=False,
        )
        assert done.returncode == 0
        assert "skipped, no CUDA device" in done.stdout
        assert not (tmp_path / "c").exists()


@pytest.mark.ray
@pytest.mark.slow(seconds=36)
def test_hpo_smoke(tmp_path: Path) -> None:
    result = _run("hpo", tmp_path)
    rows = {row["study"]: row for row in result["summary"]}
    assert set(rows) == {"asha_tpe", "full_tpe", "random"}
    trials, max_epochs = result["settings"]["trials"], result["settings"]["max_epochs"]
    for study in ("full_tpe", "random"):  # no early stopping: every trial runs the full budget
        assert rows[study]["epochs_run"] == rows[study]["full_budget_epochs"] == trials * max_epochs
        assert rows[study]["compute_saved"] == 0
    assert rows["asha_tpe"]["epochs_run"] <= rows["asha_tpe"]["full_budget_epochs"]
    for curve in result["curves"].values():  # best-so-far never gets worse
        losses = [best for _spent, best in curve]
        assert losses == sorted(losses, reverse=True)
    assert (tmp_path / "hpo.smoke.png").stat().st_size > 0


def test_instance_norm_smoke(tmp_path: Path) -> None:
    result = _run("instance_norm", tmp_path)
    rows = result["rows"]
    assert [r["instance_norm"] for r in rows] == ["none", "revin", "mean_std", "robust"]
    assert all(_positive(r["test_mse"]) and _positive(r["val_mse"]) for r in rows)


def test_season_folds_smoke_chooses_on_validation_only(tmp_path: Path) -> None:
    result = _run("season_folds", tmp_path)
    rows = result["results"]
    assert [r["candidate"] for r in rows] == ["as shipped", "model.instance_norm=revin"]
    for row in rows:
        assert sorted((r["fold"], r["seed"]) for r in row["runs"]) == [(1, 0), (2, 0), (3, 0)]
        assert all(_positive(r["val_mse"]) and 1 <= r["best_epoch"] <= r["epochs"] for r in row["runs"])
    assert result["chosen"] == {"12": min(rows, key=lambda r: r["score"])["candidate"]}
    assert "test_mse" not in json.dumps(result)  # the rule never sees a test score


def test_gpu_check_dry_runs_on_cpu_with_every_step_skipped_and_its_reason(tmp_path: Path) -> None:
    """`make gpu-check` without CUDA: each step still builds its plan (GPU tests collected, the
    example configs parsed) and is skipped with the reason; exit 0, one JSON."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: gpu-check would run for real (`make gpu-check`)")
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "gpu_check.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["status"] == "dry-run" and result["gpu"] is None
    assert set(result["steps"]) == {"tests", "precision"}
    for step in result["steps"].values():
        assert step["status"] == "skipped" and "no CUDA device" in step["reason"]
    assert result["steps"]["tests"]["collected"] >= 12  # 3 precisions + pinned memory + 4 models x 2 losses
    assert "gpu-check: DRY-RUN" in done.stdout


def test_gpu_check_precision_run_agrees_on_cpu_and_flags_a_disagreeing_loss() -> None:
    """The precision step's measurement and its tolerance check, on CPU (fp32 vs bf16 autocast)."""
    import torch

    gpu_check = bench_script("gpu_check")
    batches = gpu_check.synthetic_batches(2, 8)
    cpu = torch.device("cpu")
    fp32 = gpu_check.precision_run("dlinear", "32", cpu, batches, steps=3, warmup=1)
    bf16 = gpu_check.precision_run("dlinear", "bf16-mixed", cpu, batches, steps=3, warmup=1)
    assert _positive(fp32["windows_per_s"]) and fp32["peak_mem_mb"] is None
    assert fp32["first_loss"] != bf16["first_loss"]  # autocast really ran in bf16
    assert gpu_check.agreement(fp32, bf16) == []
    assert gpu_check.agreement(fp32, dict(bf16, final_loss=fp32["final_loss"] * 1.2)) != []
    assert gpu_check.agreement(fp32, dict(bf16, first_loss=math.nan)) != []


def test_dlinear_step_micro_times_both_decompositions() -> None:
    dlinear_step_micro = bench_script("dlinear_step_micro")
    import torch

    from tsdl.models.dlinear import SeriesDecomposition

    times = dlinear_step_micro.main(["--rounds", "1"])
    assert set(times) == {"avgpool", "cumsum"} and all(_positive(v[0]) for v in times.values())
    x = torch.randn(2, 30)  # the class is left as it was: still a staticmethod choosing by device
    assert SeriesDecomposition.uses_cumsum(x) and SeriesDecomposition(5).uses_cumsum(x)
    SeriesDecomposition(5)(x)


def test_epoch_parts_micro_times_gather_and_step_of_both_sides() -> None:
    epoch_parts_micro = bench_script("epoch_parts_micro")
    times = epoch_parts_micro.main(["--smoke", "--rounds", "1", "--steps"])
    assert len(times) == 6 and all(_positive(v[0]) for v in times.values())
    assert any(k.startswith("plain step") for k in times) and any(k.startswith("tsdl train_step") for k in times)
