"""Issue 13's done-when: real `tsdl train` runs with a lookback of one season end with test
metrics next to the seasonal-naive baseline (they crashed after the last epoch before)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdl import api
from tsdl.config import parse_config

pytestmark = [pytest.mark.ray]


def _csv(path: Path, freq: str, n_steps: int, season: int, nan_at: tuple[int, ...] = ()) -> str:
    t = np.arange(n_steps)
    rng = np.random.default_rng(0)
    frames = []
    for i, level in enumerate((50.0, 20.0)):
        y = (
            level
            + 0.05 * t
            + 4.0 * np.sin(2 * np.pi * t / season + i)
            + rng.normal(0, 0.3, n_steps)
        )
        y[list(nan_at)] = np.nan
        ds = pd.date_range("1990-01-01", periods=n_steps, freq=freq)
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": ds, "y": y}))
    pd.concat(frames).to_csv(path, index=False)
    return str(path)


def _run(tmp_path: Path, data: dict):
    config = parse_config(
        {
            "experiment": {"name": "short-lookback"},
            "data": data,
            "model": {"name": "dlinear"},
            "training": {"max_epochs": 2, "batch_size": 16, "seed": 3},
            "resources": {
                "num_workers": 1,
                "storage_path": str(tmp_path / "results"),
                "max_failures": 0,
            },
            "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        }
    )
    return api.train(config, progress=False)


def _assert_scored_next_to_baseline(result, season: int) -> None:
    ev = result.test
    assert ev.season_length == season and not ev.missing
    for metrics in (ev.model, ev.baseline, ev.model_original, ev.baseline_original):
        assert {"MAE", "MSE", "MASE"} <= set(metrics)
        assert all(math.isfinite(v) for v in metrics.values())
    assert "seasonal-naive" in ev.tables()


def test_quarterly_data_with_a_lookback_of_four(ray_local, tmp_path: Path) -> None:
    path = _csv(tmp_path / "quarterly.csv", "QS", 120, season=4)
    result = _run(tmp_path, {"path": path, "input_chunk_length": 4, "output_chunk_length": 4})
    _assert_scored_next_to_baseline(result, 4)


def test_weekly_data_with_gaps_and_a_lookback_of_52(ray_local, tmp_path: Path) -> None:
    path = _csv(tmp_path / "weekly.csv", "W-SUN", 400, season=52, nan_at=(10, 11, 200, 333))
    data = {
        "path": path,
        "input_chunk_length": 52,
        "output_chunk_length": 13,
        "missing": "interpolate",
    }
    result = _run(tmp_path, data)
    _assert_scored_next_to_baseline(result, 52)
