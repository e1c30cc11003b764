"""End to end: a smoke study on ETTh1 (MLflow parent/child runs), and kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tsdl.api import tune as run_study
from tsdl.config import parse_config
from tsdl.errors import TuneError
from tsdl.tune.study import finished_trials

REPO = Path(__file__).resolve().parents[2]
ETTH1 = REPO / ".." / "shared" / "data" / "ETTh1.csv"


def _etth1_config(tmp_path: Path):
    return parse_config(
        {
            "experiment": {"name": "etth1-smoke"},
            "data": {
                "path": str(ETTH1),
                "layout": "wide",
                "time_col": "date",
                "series_cols": "all",
                "input_chunk_length": 96,
                "output_chunk_length": 24,
                "stride": 4,
                "split": {"method": "rows", "train_rows": 2400, "val_rows": 480, "test_rows": 480},
            },
            "model": {"name": "dlinear"},
            "training": {"batch_size": 64, "limit_train_batches": 6, "optimizer": {"lr": 1e-4}},
            "resources": {"storage_path": str(tmp_path / "results"), "max_failures": 0},
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
            "tune": {
                "stage1_trials": 6,
                "stage2_trials": 0,
                "startup_trials": 3,
                "asha": {"grace_period": 1, "reduction_factor": 2, "max_epochs": 3},
                "search_space": {
                    "training.optimizer.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
                    "data.input_chunk_length": {"type": "choice", "values": ["2x", "4x"]},
                },
            },
        }
    )


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not ETTH1.exists(), reason=f"ETTh1 benchmark data not found at {ETTH1} (../shared absent)")
def test_smoke_study_on_etth1_logs_parent_and_child_runs(ray_local, tmp_path) -> None:
    import ray
    from mlflow.tracking import MlflowClient

    config = _etth1_config(tmp_path)
    result = run_study(config, progress=False)

    board = result.leaderboard
    assert len(board) >= 6
    assert board["reference"].sum() == 1
    # Not `best <= reference` (the reference is one of the candidates, so that cannot fail): the
    # reference ran its whole budget despite ASHA (the exemption that makes the comparison fair),
    # and the reported best is the leaderboard's top finished trial.
    (reference,) = [r for r in result.records if r.reference]
    assert reference.epochs == config.tune.asha.max_epochs == 3, board.to_string()  # patience 5 > 3
    assert reference.status != "asha-stopped" and reference.val_loss == result.reference_val_loss
    top = board[board["status"] != "error"].iloc[0]
    assert top["val_loss"] == result.best_val_loss and top["trial"] in {r.trial_id for r in result.records}
    assert result.asha.stopped_trials >= 1, board.to_string()
    assert result.asha.epochs_run < result.asha.full_budget_epochs
    assert (Path(result.path) / "best_config.yaml").exists()
    assert [pg for pg in ray.util.placement_group_table().values() if pg["state"] != "REMOVED"] == []

    client = MlflowClient(config.tracking.tracking_uri)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.data.tags["tsdl.kind"] == "study"
    assert parent.data.metrics["study_best_val_loss"] == pytest.approx(result.best_val_loss)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == len(board)
    stopped = [c for c in children if c.data.tags["tsdl.asha_stopped"] == "true"]
    assert len(stopped) == result.asha.stopped_trials
    assert all(c.data.tags["tsdl.stopped_at_rung"] for c in stopped)
    for child in children:
        curve = client.get_metric_history(child.info.run_id, "val_loss")
        assert len(curve) == int(child.data.tags["tsdl.epochs"]) >= 1
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.csv", "best_config.yaml", "best_vs_reference.json", "search_space.json"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in plots


def _synthetic_yaml(tmp_path: Path) -> Path:
    raw = {
        "experiment": {"name": "resume"},
        "data": {"synthetic": {"n_series": 4, "n_timesteps": 400, "seed": 1}, "input_chunk_length": 48,
                 "output_chunk_length": 12, "stride": 2},
        "model": {"name": "dlinear"},
        "training": {"batch_size": 32, "limit_train_batches": 4},
        "resources": {"storage_path": str(tmp_path / "results"), "max_failures": 0},
        "tracking": {"enabled": False},
        "tune": {
            "stage1_trials": 4,
            "stage2_trials": 1,
            "startup_trials": 2,
            "max_concurrent_trials": 1,
            "asha": {"grace_period": 1, "reduction_factor": 2, "max_epochs": 2},
            "search_space": {"training.optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        },
    }
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _finished_trials(stage_dir: Path) -> dict[str, int]:
    """trial dir -> rows in its result.json, for trials Tune marked done."""
    finished = {}
    for result in stage_dir.glob("*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        if rows and rows[-1].get("done"):
            finished[result.parent.name] = len(rows)
    return finished


@pytest.mark.ray
@pytest.mark.slow(seconds=31)
@pytest.mark.timeout(900)
def test_killed_study_resumes_and_keeps_finished_trials(ray_local, tmp_path, capsys) -> None:
    """A RayJob retry runs the same entrypoint: `--study-name NAME --resume-if-exists`."""
    cfg = _synthetic_yaml(tmp_path)
    env = dict(os.environ, RAY_TRAIN_V2_ENABLED="1")
    entrypoint = ["tune", "-c", str(cfg), "--quiet", "--study-name", "job-1", "--resume-if-exists"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsdl.cli.main", *entrypoint],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        finished: dict[str, int] = {}
        while time.monotonic() < deadline and len(finished) < 2:
            time.sleep(2)
            stage1 = next((tmp_path / "results").glob("*/stage1"), None)
            finished = _finished_trials(stage1) if stage1 else {}
            assert proc.poll() is None, "the study ended before it could be interrupted"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started in-process
        proc.wait()
    assert len(finished) >= 2
    assert stage1.parent.name == "job-1"

    config = parse_config(yaml.safe_load(cfg.read_text()))
    with pytest.raises(TuneError, match="a study named 'job-1' already exists"):
        run_study(config, name="job-1")  # reusing a name without the flag is refused
    before = finished_trials(str(stage1.parent))
    assert len(before) >= 2
    capsys.readouterr()
    result = run_study(config, name="job-1", resume_if_exists=True, progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert f"resuming study job-1 ({len(before)} trials finished)" in lines

    assert len(result.leaderboard) == 5  # 4 stage-1 + 1 stage-2 trials, none lost
    after = _finished_trials(stage1)
    assert {name: after[name] for name in finished} == finished  # finished trials were not rerun
    assert (stage1.parent / "stage2").is_dir()


@pytest.mark.ray
@pytest.mark.slow(seconds=22)
@pytest.mark.timeout(600)
def test_study_on_s3_storage(s3, tmp_path) -> None:
    """A study whose storage is a bucket (endpoint from AWS_ENDPOINT_URL), as in a cluster."""
    raw = yaml.safe_load(_synthetic_yaml(tmp_path).read_text())
    raw["resources"]["storage_path"] = s3.uri("studies")
    raw["tune"].update(stage1_trials=2, stage2_trials=0, startup_trials=1)
    raw["tune"]["asha"]["max_epochs"] = 1
    cfg = tmp_path / "s3.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, RAY_TRAIN_V2_ENABLED="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-m", "tsdl.cli.main", "tune", "-c", str(cfg), "--quiet", "--study-name", "s3-study"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    keys = s3.keys("studies/s3-study/")
    for name in ("study.json", "leaderboard.csv", "best_config.yaml", "summary.json"):
        assert f"studies/s3-study/{name}" in keys, keys
    # Single-worker trials report their checkpoints to Tune: they live in the stage's trial dirs.
    assert any(k.startswith("studies/s3-study/stage1/") and k.endswith("/last.pt") for k in keys), keys
    assert len(finished_trials(s3.uri("studies/s3-study"))) == 2
