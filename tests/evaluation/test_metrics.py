"""Metrics against hand computations and scipy; seasonal naive; tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tsdl.errors import ConfigError, DataError, TrainingError
from tsdl.evaluation import (
    CRPS_LEVELS,
    crps_from_quantiles,
    gaussian_metrics,
    interval_coverage,
    metrics_table,
    point_metrics,
    quantile_metrics,
    seasonal_naive,
)


def test_point_metrics_match_hand_computation() -> None:
    y = np.array([[1.0, 2.0], [3.0, 0.0]])
    p = np.array([[2.0, 2.0], [1.0, 0.0]])
    # errors: 1, 0, -2, 0 ; |y|+|p|: 3, 4, 4, 0 (0/0 counts as 0)
    out = point_metrics(y, p, insample_scale=np.array([0.5, 2.0]))
    assert out["MAE"] == pytest.approx(3.0 / 4)
    assert out["MSE"] == pytest.approx(5.0 / 4)
    assert out["RMSE"] == pytest.approx(math.sqrt(5.0 / 4))
    assert out["sMAPE"] == pytest.approx(200.0 * (1 / 3 + 0 + 2 / 4 + 0) / 4)
    # per-window MAE: 0.5 and 1.0, divided by scales 0.5 and 2.0
    assert out["MASE"] == pytest.approx((0.5 / 0.5 + 1.0 / 2.0) / 2)


def test_point_metrics_without_scale_has_no_mase_and_smape_is_bounded() -> None:
    y = np.array([[1.0, -1.0]])
    out = point_metrics(y, -y, insample_scale=None)
    assert "MASE" not in out
    assert out["sMAPE"] == pytest.approx(200.0)


def test_mase_leaves_out_constant_series_with_a_warning() -> None:
    y = np.ones((2, 3))
    with pytest.warns(RuntimeWarning, match="1 of 2 windows"):
        out = point_metrics(y, y + 1.0, insample_scale=np.array([0.0, 4.0]))
    assert out["MASE"] == pytest.approx(0.25)


def test_non_finite_values_are_errors_not_silent_nans() -> None:
    y = np.zeros((2, 2))
    bad = y.copy()
    bad[1, 0] = np.nan
    with pytest.raises(
        TrainingError, match=r"y_pred has 1 non-finite values \(first at index \(1, 0\)\)"
    ):
        point_metrics(y, bad, insample_scale=None)
    with pytest.raises(DataError, match="y_true"):
        point_metrics(bad, y, insample_scale=None)
    with pytest.raises(ValueError, match=r"\[N, H\]"):
        point_metrics(y, np.zeros((2, 3)), insample_scale=None)


def test_quantile_metrics_match_hand_computation() -> None:
    y = np.array([[0.0, 10.0]])
    q = np.array([[[-1.0, 0.0, 1.0], [8.0, 9.0, 9.5]]])  # [1, 2, 3]
    levels = [0.1, 0.5, 0.9]
    # pinball(level, y - q): point 1: (0.1*1, 0, 0.1*1) ; point 2: (0.1*2, 0.5*1, 0.9*0.5)
    expected = (0.1 + 0.0 + 0.1 + 0.2 + 0.5 + 0.45) / 6
    out = quantile_metrics(y, q, levels)
    assert out["pinball"] == pytest.approx(expected)
    assert out["CRPS"] == pytest.approx(2 * expected)
    assert out["coverage"] == pytest.approx(0.5)
    assert out["interval_width"] == pytest.approx((2.0 + 1.5) / 2)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        quantile_metrics(y, q, [0.0, 0.5, 1.0])


def test_gaussian_metrics_match_scipy() -> None:
    from scipy import stats
    rng = np.random.default_rng(0)
    y = rng.normal(size=(4, 5))
    mu = rng.normal(size=(4, 5))
    sigma = rng.uniform(0.5, 2.0, size=(4, 5))
    out = gaussian_metrics(y, mu, sigma)
    # CRPS of a Gaussian = E|X - y| - 0.5 E|X - X'|, computed by numerical integration of
    # (F(x) - 1{x >= y})^2 with scipy's CDF.
    grid = np.linspace(-30, 30, 200_001)
    crps = [
        np.trapezoid((stats.norm.cdf(grid, m, s) - (grid >= t)) ** 2, grid)
        for t, m, s in zip(y.ravel(), mu.ravel(), sigma.ravel(), strict=True)
    ]
    assert out["CRPS"] == pytest.approx(np.mean(crps), rel=1e-4)
    assert out["NLL"] == pytest.approx(-np.mean(stats.norm.logpdf(y, mu, sigma)))
    lo, hi = stats.norm.interval(0.8, mu, sigma)
    assert out["coverage_80"] == pytest.approx(np.mean((y >= lo) & (y <= hi)))
    with pytest.raises(TrainingError, match="std must be > 0"):
        gaussian_metrics(y, mu, np.zeros_like(sigma))


def test_crps_from_quantiles_matches_the_gaussian_closed_form() -> None:
    from scipy import stats
    rng = np.random.default_rng(3)
    y = rng.normal(size=(50, 6))
    mu = rng.normal(size=(50, 6))
    sigma = rng.uniform(0.3, 3.0, size=(50, 6))
    grid = stats.norm.ppf(np.asarray(CRPS_LEVELS), mu[..., None], sigma[..., None])
    got = crps_from_quantiles(y, grid)
    z = (y - mu) / sigma
    closed = sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))
    np.testing.assert_allclose(got, closed, rtol=2e-3, atol=1e-4)
    assert got.mean() == pytest.approx(gaussian_metrics(y, mu, sigma)["CRPS"], rel=5e-4)


def test_crps_of_a_point_mass_is_the_absolute_error() -> None:
    y = np.array([[1.0, -2.0, 0.5]])
    point = np.array([[0.0, 1.0, 0.5]])
    grid = np.repeat(point[..., None], len(CRPS_LEVELS), axis=-1)
    np.testing.assert_allclose(crps_from_quantiles(y, grid), np.abs(y - point), rtol=1e-12)
    # levels weigh by their midpoint bins: a lone median level covers all of (0, 1)
    np.testing.assert_allclose(crps_from_quantiles(y, point[..., None], [0.5]), np.abs(y - point))
    with pytest.raises(ValueError, match="increase strictly"):
        crps_from_quantiles(y, np.stack([point, point], -1), [0.5, 0.5])


def test_interval_coverage_counts_the_ends_inside() -> None:
    y = np.array([[0.0, 1.0, 2.0, 3.0]])
    assert interval_coverage(y, np.full_like(y, 1.0), np.full_like(y, 2.0)) == pytest.approx(0.5)
    with pytest.raises(TrainingError, match="non-finite"):
        interval_coverage(y, np.full_like(y, np.nan), y)


def test_seasonal_naive_is_exact_on_a_periodic_series() -> None:
    season, lookback, horizon = 24, 72, 30
    t = np.arange(lookback + horizon)
    series = np.stack([np.sin(2 * np.pi * t / season) + k for k in range(3)])  # [3, L + H]
    forecast = seasonal_naive(series[:, :lookback], horizon, season)
    assert forecast.shape == (3, horizon)
    out = point_metrics(series[:, lookback:], forecast, insample_scale=None)
    assert out["MAE"] == pytest.approx(0.0, abs=1e-12)


def test_seasonal_naive_repeats_the_last_season() -> None:
    past = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    np.testing.assert_array_equal(seasonal_naive(past, 5, 2), [[4.0, 5.0, 4.0, 5.0, 4.0]])
    np.testing.assert_array_equal(seasonal_naive(past, 2, 1), [[5.0, 5.0]])
    with pytest.raises(ConfigError, match="input_chunk_length"):
        seasonal_naive(past, 3, 6)


def test_metrics_table_shows_skill_against_the_baseline() -> None:
    model = {"MAE": 0.5, "RMSE": 0.8, "coverage": 0.79}
    baseline = {"MAE": 1.0, "RMSE": 0.8}
    table = metrics_table(model, baseline, title="test (original scale)")
    lines = table.splitlines()
    assert lines[0] == "test (original scale)"
    assert lines[1].split() == ["metric", "model", "seasonal-naive", "skill"]
    assert lines[3].split() == ["MAE", "0.5", "1", "0.5"]
    assert lines[4].split() == ["RMSE", "0.8", "0.8", "0"]
    assert lines[5].split() == ["coverage", "0.79", "-", "-"]
    assert len({len(line) for line in lines[1:3]}) == 1  # header and rule align
