"""`tsdl predict` on a model trained with a known-future covariate that drives the target: the
future values in the input file must reach the model (true values forecast far better than
zeroed or one-step-late ones), and a file without them is a one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdl import api
from tsdl.cli.main import main
from tsdl.config import parse_config

L, H, N_STEPS, ORIGIN = 24, 6, 400, 360


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """DLinear trained in-process (one worker, no Ray, no MLflow) on y = 5 * promo + season + noise."""
    tmp = tmp_path_factory.mktemp("future-cov")
    rng = np.random.default_rng(0)
    ds = pd.date_range("2024-01-01", periods=N_STEPS, freq="h")
    season = np.sin(np.arange(N_STEPS) * 2 * np.pi / 24)
    frames = []
    for i in range(2):
        promo = rng.normal(size=N_STEPS)
        y = 10.0 * i + 5.0 * promo + season + rng.normal(0, 1.0, N_STEPS)  # |corr| < the leakage check's 0.99
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y, "promo": promo}))
    data = pd.concat(frames, ignore_index=True)
    data.to_csv(tmp / "data.csv", index=False)
    config = parse_config(
        {
            "experiment": {"name": "future-cov"},
            "data": {
                "path": str(tmp / "data.csv"),
                "input_chunk_length": L,
                "output_chunk_length": H,
                "covariates": {"future": ["promo"]},
            },
            "model": {"name": "dlinear"},
            "training": {"max_epochs": 8, "batch_size": 32, "seed": 0, "optimizer": {"lr": 0.01}},
            "resources": {"num_workers": 1, "storage_path": str(tmp / "results"), "max_failures": 0},
            "tracking": {"enabled": False},
        }
    )
    result = api.train(config, progress=False)
    assert result.checkpoint_dir is not None
    return {"data": data, "checkpoint": str(result.checkpoint_dir), "tmp": tmp}


def _input(data: pd.DataFrame, promo: str) -> pd.DataFrame:
    """History up to ORIGIN, then H rows with y empty and promo true, zeroed or one step late."""
    parts = []
    for _, series in data.groupby("unique_id"):
        part = series.iloc[: ORIGIN + H].copy()
        future = part.index[ORIGIN:]
        part.loc[future, "y"] = np.nan
        if promo == "zeroed":
            part.loc[future, "promo"] = 0.0
        elif promo == "one step late":
            part.loc[future, "promo"] = series.promo.to_numpy()[ORIGIN - 1 : ORIGIN + H - 1]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_forecasts_use_the_future_covariate_values(trained: dict) -> None:
    data, tmp = trained["data"], trained["tmp"]
    truth = data.groupby("unique_id").nth(slice(ORIGIN, ORIGIN + H))[["unique_id", "ds", "y"]]
    mae = {}
    for promo in ("true", "zeroed", "one step late"):
        path, out = tmp / f"{promo}.csv", tmp / f"{promo}.parquet"
        _input(data, promo).to_csv(path, index=False)
        argv = ["predict", "--checkpoint", trained["checkpoint"], "--input", str(path), "--output", str(out)]
        assert main(argv) == 0
        forecasts = pd.read_parquet(out)
        joined = truth.merge(forecasts, on=["unique_id", "ds"], validate="one_to_one")
        assert len(joined) == len(forecasts) == 2 * H  # the horizon is the file's future rows
        mae[promo] = float(np.mean(np.abs(joined.y - joined.y_hat)))
    # The noise alone gives an MAE of ~0.8; without the right promo values the 5 * promo term is lost.
    assert mae["true"] < 1.5, mae
    assert mae["true"] < 0.4 * min(mae["zeroed"], mae["one step late"]), mae


def test_history_without_future_rows_is_a_one_line_error(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(trained["tmp"]) / "history.csv"
    trained["data"].groupby("unique_id").head(ORIGIN).to_csv(path, index=False)
    argv = ["predict", "--checkpoint", trained["checkpoint"], "--input", str(path), "--output", "x.parquet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "series 's0' has 0 rows after its last target value" in err
    assert "end every series with exactly 6 rows" in err and "'promo'" in err
