"""Model vs seasonal-naive report: baseline metrics, skill, MASE scale and season resolution."""

from __future__ import annotations

import numpy as np
import pytest

from tsdl.evaluation import evaluate_point, insample_scale, resolve_season


def test_insample_scale_is_mean_abs_seasonal_difference() -> None:
    train = np.array([[1.0, 2.0, 4.0, 7.0], [5.0, 5.0, 5.0, 5.0]])
    # season 2: |4-1|, |7-2| -> 4 ; constant -> 0
    np.testing.assert_allclose(insample_scale(train, 2), [4.0, 0.0])
    with pytest.raises(ValueError, match="T > season"):
        insample_scale(train, 4)


def test_resolve_season_prefers_config_then_frequency() -> None:
    assert resolve_season(12, "h") == 12
    assert resolve_season(None, "h") == 24
    assert resolve_season(None, None) == 1


def test_evaluate_point_reports_baseline_and_skill() -> None:
    season, lookback, horizon = 4, 8, 4
    t = np.arange(lookback + horizon, dtype=np.float64)
    # a trend + season: seasonal naive misses the trend by exactly `season` steps of slope 0.5
    series = np.stack([0.5 * t + np.tile([0.0, 1.0, 0.0, -1.0], 3)])
    past, y_true = series[:, :lookback], series[:, lookback:]
    y_pred = y_true + 1.0  # the model is off by 1 everywhere
    report = evaluate_point(
        y_true, y_pred, past, season=season, insample_scale=np.array([2.0]), title="test"
    )
    assert report.baseline["MAE"] == pytest.approx(2.0)  # naive error = 0.5 * 4
    assert report.model["MAE"] == pytest.approx(1.0)
    assert report.skill["MAE"] == pytest.approx(0.5)
    assert report.skill["MASE"] == pytest.approx(0.5)
    assert report.flat()["naive_MAE"] == pytest.approx(2.0)
    assert report.flat()["skill_RMSE"] == pytest.approx(1.0 - 1.0 / 2.0)
    assert "season=4" in report.table.splitlines()[0]
    mae_row = next(r for r in report.table.splitlines() if r.startswith("MAE"))
    assert mae_row.split() == ["MAE", "1", "2", "0.5"]
