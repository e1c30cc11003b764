"""Test evaluation (`evaluate_windows`, the function `tsdl train` and `tsdl evaluate` call) for
lookbacks at or below the season: the baseline and MASE come from the series' history."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tsdl.config import parse_config
from tsdl.data import prepare_data
from tsdl.losses import build_loss
from tsdl.models import build_model
from tsdl.train import evaluate_windows, model_dims


def _evaluate(raw: dict):
    config = parse_config(raw)
    prepared = prepare_data(config)
    loss = build_loss(config.loss)
    torch.manual_seed(0)
    model = build_model(config.model, **model_dims(prepared), loss=loss)
    evaluation = evaluate_windows(
        model,
        loss,
        prepared.windows("test"),
        inverse=lambda values, ids: prepared.scalers.inverse_transform(ids, values),
        history=prepared.history("test"),
        season_length=prepared.season_length,
    )
    return evaluation, prepared


def _hourly(lookback: int) -> dict:
    return {
        "data": {
            "synthetic": {"n_series": 2, "n_timesteps": 400, "seed": 1, "freq": "h"},
            "input_chunk_length": lookback,
            "output_chunk_length": 12,
        },
        "model": {"name": "dlinear"},
    }


@pytest.mark.parametrize("lookback", [1, 12, 24])
def test_lookback_at_or_below_the_season_is_scored_like_a_long_one(lookback: int) -> None:
    short, prepared = _evaluate(_hourly(lookback))
    long, _ = _evaluate(_hourly(72))
    assert short.season_length == prepared.season_length == 24 and not short.missing
    # The test windows (their forecast origins) do not depend on L, and neither may the baseline.
    assert short.n_windows == long.n_windows
    for key in ("MAE", "MSE", "MASE"):
        assert short.baseline[key] == pytest.approx(long.baseline[key], rel=1e-6)
        assert short.baseline_original[key] == pytest.approx(long.baseline_original[key], rel=1e-6)
    assert np.isfinite(short.model["MASE"]) and np.isfinite(short.model_original["MASE"])


def test_mase_scale_is_the_train_segment_seasonal_difference() -> None:
    evaluation, prepared = _evaluate(_hourly(24))
    h = prepared.history("test")
    windows = prepared.windows("test")
    truth = prepared.scalers.inverse_transform(
        h.series_ids, windows.batch_at(np.arange(len(windows))).target.numpy()
    )
    naive = h.original[
        (h.origin - 24)[:, None] + np.arange(12) % 24
    ]  # the last observed day, repeated
    scales = {}
    for i, uid in enumerate(h.series_ids):
        train = h.original[h.series_start[i] : h.train_end[i]]
        scales[uid] = np.mean(np.abs(train[24:] - train[:-24]))
    scale = np.array([scales[uid] for uid in h.series_ids])
    expected = np.mean(np.abs(truth - naive).mean(axis=1) / scale)
    assert evaluation.baseline_original["MASE"] == pytest.approx(expected, rel=1e-9)
    assert evaluation.baseline_original["MAE"] == pytest.approx(
        np.mean(np.abs(truth - naive)), rel=1e-9
    )


def _quarterly_csv(
    tmp_path, n_steps: int = 60, nan_at: tuple[int, ...] = (), freq: str = "QS"
) -> str:
    t = np.arange(n_steps)
    frames = []
    for i, level in enumerate((100.0, 40.0)):
        y = level * (1 + 0.01 * t) + 5.0 * np.tile([1.0, -1.0, 2.0, -2.0], n_steps)[:n_steps] + i
        y[list(nan_at)] = np.nan
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": f"s{i}",
                    "ds": pd.date_range("2000-01-01", periods=n_steps, freq=freq),
                    "y": y,
                }
            )
        )
    path = tmp_path / "series.csv"
    pd.concat(frames).to_csv(path, index=False)
    return str(path)


def test_quarterly_lookback_of_one_season(tmp_path) -> None:
    raw = {
        "data": {
            "path": _quarterly_csv(tmp_path),
            "input_chunk_length": 4,
            "output_chunk_length": 4,
        },
        "model": {"name": "dlinear"},
    }
    evaluation, _ = _evaluate(raw)
    assert evaluation.season_length == 4 and not evaluation.missing
    assert {"MAE", "MASE"} <= set(evaluation.baseline) and "MASE" in evaluation.model
    # The series is trend + an exact quarterly pattern: repeating last year misses only the trend.
    assert evaluation.baseline_original["MASE"] == pytest.approx(1.0, rel=0.25)


def test_a_metric_the_history_cannot_support_is_missing_with_a_reason(tmp_path) -> None:
    # 20 quarters: train 14 rows, but data.seasonality 19 > the 14 training steps and > any observed history.
    raw = {
        "data": {
            "path": _quarterly_csv(tmp_path, n_steps=20),
            "input_chunk_length": 2,
            "output_chunk_length": 2,
            "seasonality": 19,
        },
        "model": {"name": "dlinear"},
    }
    evaluation, _ = _evaluate(raw)
    assert "MASE" not in evaluation.model and evaluation.baseline == {}
    assert "training steps, MASE needs more than one season (19)" in evaluation.missing["MASE"]
    assert "fewer than one season (19)" in evaluation.missing["seasonal-naive"]
    assert {"MAE", "MSE"} <= set(evaluation.model)
    text = evaluation.tables()
    assert "MASE: not computed: " in text and "seasonal-naive: not computed: " in text
