"""`tsdl train / evaluate / predict / train --reproduce` through the CLI, on one small run."""

from __future__ import annotations

import contextlib
import io
import math
import re

import mlflow
import pandas as pd
import pytest
import yaml

from tsdl.cli.main import main
from tsdl.config import SyntheticDataConfig
from tsdl.data.io import ID_COL, TARGET_COL, TIME_COL
from tsdl.data.synthetic import synthetic_frame

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, ray_local) -> dict:
    """One real training run shared by the tests of this module."""
    tmp_path = tmp_path_factory.mktemp("cli-train")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = {
        "experiment": {"name": "cli"},
        "data": {
            "synthetic": {"n_series": 3, "n_timesteps": 300, "seed": 3},
            "input_chunk_length": 48,
            "output_chunk_length": 12,
        },
        "loss": {"name": "pinball"},  # a probabilistic head, so calibration is reported too
        "training": {"max_epochs": 2, "batch_size": 32, "limit_train_batches": 5},
        "resources": {"storage_path": str(tmp_path / "results"), "max_failures": 0},
        "tracking": {"tracking_uri": uri},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["train", "-c", str(path), "--run-name", "cli-run"]) == 0
    out = buffer.getvalue()
    run_id = re.search(r"mlflow run: (\w+)", out).group(1)
    return {"config": path, "uri": uri, "out": out, "run_id": run_id, "tmp": tmp_path}


def test_train_prints_checklist_progress_and_metrics(trained: dict) -> None:
    out = trained["out"]
    assert "checklist passed" in out
    assert re.search(r"epoch\s+1/2\s+train_loss \d+\.\d+\s+val_loss", out)
    assert re.search(r"epoch\s+2/2", out)
    # The original-scale table: model next to a finite seasonal-naive MSE, the one logged to MLflow.
    table = out.split("test (original scale)", 1)[1]
    assert re.search(r"^metric\s+model\s+seasonal-naive\s+skill$", table, re.M)
    naive = float(re.search(r"^MSE\s+\S+\s+(\S+)\s+\S+$", table, re.M).group(1))
    logged = mlflow.MlflowClient(trained["uri"]).get_run(trained["run_id"]).data.metrics
    assert math.isfinite(naive) and naive == pytest.approx(logged["test_naive_MSE_original"], rel=1e-3)
    assert "tsdl train --resume cli-run" in out


def test_evaluate_and_predict_from_the_run(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    run = ["--run-id", trained["run_id"], "--tracking-uri", trained["uri"]]
    assert main(["evaluate", *run]) == 0
    printed = capsys.readouterr().out
    assert "test (original scale)" in printed
    # calibration next to the point metrics, and the same numbers in the run's MLflow test metrics
    rows = {line.split()[0]: line.split()[1:] for line in printed.split("test (original scale)")[0].splitlines()
            if line.split()}
    logged = mlflow.MlflowClient(trained["uri"]).get_run(trained["run_id"]).data.metrics
    for name in ("CRPS", "coverage_80", "width_80", "pinball", "MSE"):
        assert float(rows[name][0]) == pytest.approx(logged[f"test_{name}"], rel=1e-3)
    assert 0.0 <= logged["test_coverage_80"] <= 1.0
    assert logged["test_naive_CRPS"] == pytest.approx(logged["test_naive_MAE"])
    assert "test_CRPS_original" in logged

    frame = synthetic_frame(SyntheticDataConfig(n_series=3, n_timesteps=300, seed=3)).frame
    history = frame.rename(columns={ID_COL: "unique_id", TIME_COL: "ds", TARGET_COL: "y"})
    csv = trained["tmp"] / "history.csv"
    history.to_csv(csv, index=False)
    out = trained["tmp"] / "forecasts.parquet"
    assert main(["predict", *run, "--input", str(csv), "--output", str(out)]) == 0
    forecasts = pd.read_parquet(out)
    assert len(forecasts) == 3 * 12
    assert set(forecasts["unique_id"]) == set(history["unique_id"])
    assert forecasts["ds"].min() > history["ds"].max()
    assert forecasts["y_hat"].notna().all()
    # Forecasts are on the original scale: near each series' level, not near 0.
    level = history.groupby("unique_id")["y"].mean()
    mean_fc = forecasts.groupby("unique_id")["y_hat"].mean()
    assert ((mean_fc / level[mean_fc.index]).between(0.3, 3.0)).all()


def test_reproduce_matches_the_original_run(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--reproduce", trained["run_id"], "--tracking-uri", trained["uri"]])
    out = capsys.readouterr().out
    assert code == 0, out
    rerun_id = re.search(rf"^reproduced: run {trained['run_id']} -> (\w+)$", out, re.M).group(1)
    assert "input data changed" not in out  # data_matches
    assert "test_MAE" in out and "DIFF" not in out
    # Same seed, same data: every test metric is bit-for-bit the original's.
    client = mlflow.MlflowClient(trained["uri"])
    original, rerun = (
        {k: v for k, v in client.get_run(run).data.metrics.items() if k.startswith("test_")}
        for run in (trained["run_id"], rerun_id)
    )
    assert original and rerun == original


def test_missing_run_is_one_line(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--run-id", "0" * 32, "--tracking-uri", trained["uri"]]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err
