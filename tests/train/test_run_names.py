"""Run names a RayJob can retry with, fail-fast probes, and training on an S3-compatible store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tsdl import api
from tsdl.cli.main import main
from tsdl.errors import ConfigError, TrainingError
from tsdl.train import RunRecord
from tsdl.train.epoch_hooks import EpochLog, FailOnce

REPO_ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write(tmp_path: Path, config) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def test_dead_tracking_server_fails_before_any_work(make_config, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    dead = f"http://127.0.0.1:{_closed_port()}"
    cfg = _write(tmp_path, make_config(tracking__tracking_uri=dead))
    start = time.monotonic()
    assert main(["train", "-c", str(cfg), "--run-name", "never"]) == 2
    assert time.monotonic() - start < 30
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1
    assert err[0].startswith(f"error: MLflow tracking server {dead} is unreachable (connection refused) (fix: ")
    assert "MLFLOW_TRACKING_URI" in err[0]
    assert not (tmp_path / "results" / "never").exists()  # no run was started


def test_env_tracking_uri_beats_the_config(make_config, tmp_path: Path, capsys, monkeypatch) -> None:
    """A pod's MLFLOW_TRACKING_URI wins over a laptop URI left in the config (and says so)."""
    dead = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    cfg = _write(tmp_path, make_config())  # config: a local sqlite store
    assert main(["train", "-c", str(cfg)]) == 2
    captured = capsys.readouterr()
    assert f"tracking: MLflow at {dead} (from $MLFLOW_TRACKING_URI)" in captured.out
    assert f"MLflow tracking server {dead} is unreachable" in captured.err


def test_unwritable_storage_fails_before_any_work(make_config, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = make_config(resources__storage_path=str(blocker / "results"))
    assert main(["train", "-c", str(_write(tmp_path, config))]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: resources.storage_path {blocker}/results")


def test_runs_store_absolute_paths(make_config, tmp_path: Path, monkeypatch) -> None:
    """A run started with relative paths can be evaluated from any other working directory."""
    import numpy as np
    import pandas as pd

    work = tmp_path / "work"
    work.mkdir()
    times = pd.date_range("2024-01-01", periods=300, freq="h")
    frame = pd.DataFrame({"unique_id": "a", "ds": times, "y": np.sin(np.arange(300) / 4) + 5})
    frame.to_csv(work / "series.csv", index=False)
    monkeypatch.chdir(work)
    config = make_config(
        data__path="series.csv", resources__storage_path="results", training__max_epochs=1, tracking__enabled=False
    )
    result = api.train(config, run_name="rel", progress=False)
    record = RunRecord.load(str(work / "results"), "rel")
    assert record.storage_path == str(work / "results")
    assert record.config["data"]["path"] == str(work / "series.csv")
    monkeypatch.chdir(tmp_path)
    assert api.evaluate(checkpoint=result.checkpoint_dir).n_windows > 0


@pytest.mark.ray
def test_run_name_reuse_is_refused_and_resume_if_exists_resumes(ray_local, make_config, tmp_path: Path) -> None:
    config = make_config(training__max_epochs=4)
    storage = str(tmp_path / "results")
    hooks = (EpochLog(str(tmp_path / "started.log")), FailOnce(3, str(tmp_path / "marker")))
    with pytest.raises(TrainingError):
        api.train(config, run_name="job-1", epoch_hooks=hooks, progress=False)
    first_mlflow_run = RunRecord.load(storage, "job-1").mlflow_run_id

    with pytest.raises(ConfigError, match="a run named 'job-1' already exists") as refused:
        api.train(config, run_name="job-1", epoch_hooks=hooks, progress=False)
    assert "--resume job-1" in refused.value.hint and "--resume-if-exists" in refused.value.hint

    resumed = api.train(config, run_name="job-1", resume_if_exists=True, epoch_hooks=hooks, progress=False)
    started = [int(x) for x in (tmp_path / "started.log").read_text().split()]
    assert started == [1, 2, 3, 3, 4]  # epochs 1-2 were finished and not repeated
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert resumed.mlflow_run_id == first_mlflow_run  # the same MLflow run continues

    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=config.tracking.tracking_uri).get_run(first_mlflow_run)
    assert run.info.status == "FINISHED"
    assert [m.step for m in MlflowClient(tracking_uri=config.tracking.tracking_uri).get_metric_history(
        first_mlflow_run, "val_loss")] == [1, 2, 3, 4]


@pytest.mark.ray
@pytest.mark.slow(seconds=52)
@pytest.mark.timeout(600)
def test_train_with_data_and_storage_on_s3(s3, make_config, tmp_path: Path) -> None:
    """`tsdl train` as a user runs it: data and results in a bucket, endpoint from AWS_ENDPOINT_URL."""
    import numpy as np
    import pandas as pd

    times = pd.date_range("2024-01-01", periods=360, freq="h")
    rng = np.random.default_rng(0)
    frame = pd.concat(
        pd.DataFrame({"unique_id": f"s{i}", "ds": times, "y": 10 * i + np.sin(np.arange(360) / 4) + rng.normal(0, 0.1, 360)})
        for i in range(3)
    )
    data_uri = s3.put("data/series.csv", frame.to_csv(index=False))
    config = make_config(
        data__path=data_uri,
        training__max_epochs=1,
        resources__storage_path=s3.uri("results"),
    )
    cfg = _write(tmp_path, config)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=str(REPO_ROOT), RAY_TRAIN_V2_ENABLED="1")
    proc = subprocess.run(
        [sys.executable, "-m", "tsdl.cli.main", "train", "-c", str(cfg), "--run-name", "s3-run",
         "--resume-if-exists", "--quiet"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The README's compact-output claim (checked here, where a whole --quiet training runs anyway).
    lines = (proc.stdout + proc.stderr).splitlines()
    assert len(lines) <= 15, "a --quiet training printed:\n" + "\n".join(lines)
    keys = s3.keys("results/s3-run/")
    assert "results/s3-run/tsdl_run.json" in keys
    assert any("/checkpoint_" in k and k.endswith("last.pt") for k in keys), keys
    record = RunRecord.load(s3.uri("results"), "s3-run")
    assert record.status == "FINISHED" and record.config["data"]["path"] == data_uri
