"""Test-set scoring of probabilistic heads: coverage and CRPS where the right answer is known.

A "model" that always predicts the very distribution the targets are drawn from must show ~80%
coverage of its 80% interval and the closed-form CRPS; an overconfident one must not.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from tsdl.data import WindowSet
from tsdl.data.history import WindowHistory
from tsdl.errors import TrainingError
from tsdl.evaluation import CRPS_LEVELS, crps_from_quantiles
from tsdl.losses import GaussianNLLLoss, MSELoss, PinballLoss
from tsdl.train.inference import evaluate_windows

_L, _H = 8, 6


class _Constant(torch.nn.Module):
    """Emits the same raw head output for every window (ignores the inputs)."""

    def __init__(self, raw: list[float]) -> None:
        super().__init__()
        self.raw = torch.tensor(raw, dtype=torch.float32)

    def forward(self, past: torch.Tensor, future: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        return self.raw.expand(past.shape[0], _H, -1).clone()


def _windows(values: np.ndarray) -> WindowSet:
    """Non-overlapping windows over ``[S, T]`` series (so targets are independent draws)."""
    n_series, length = values.shape
    span = _L + _H
    count = (length - span) // span + 1
    segments = [[i * length, (i + 1) * length, i * length, count, i] for i in range(n_series)]
    return WindowSet(
        values.reshape(-1, 1).astype(np.float32),
        np.arange(values.size, dtype=np.int64),
        np.asarray(segments),
        np.asarray([f"s{i}" for i in range(n_series)], dtype=object),
        np.zeros((n_series, 0)),
        input_chunk_length=_L,
        output_chunk_length=_H,
        n_future=0,
        stride=span,
    )


def _history(ws: WindowSet, inverse) -> WindowHistory:
    """Each segment is one series; its first lookback plays the train segment (MASE scale)."""
    index = np.arange(len(ws))
    segment = np.repeat(np.arange(len(ws.segments)), ws.segments[:, 3])
    start = ws.segments[segment, 0]
    return WindowHistory(
        scaled=ws.data[:, 0],
        original=inverse(ws.data[:, 0].astype(np.float64), None),
        series_start=start,
        train_end=start + _L,
        origin=ws.starts(index) + _L,
        series_ids=np.asarray(ws.series_ids),
    )


def _evaluate(model, loss, ws: WindowSet, inverse):
    return evaluate_windows(model, loss, ws, inverse=inverse, history=_history(ws, inverse), season_length=2)


def _affine(slope: float, shift: float):
    return lambda values, ids: np.asarray(values, np.float64) * slope + shift


def _softplus_inverse(y: float) -> float:
    return math.log(math.expm1(y))


def _gaussian_crps(y: np.ndarray, sigma: float) -> float:
    z = y / sigma
    return float(np.mean(sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / math.sqrt(math.pi))))


def _targets(ws: WindowSet) -> np.ndarray:
    return ws.batch_at(np.arange(len(ws))).target.numpy().astype(np.float64)


@pytest.mark.parametrize(("predicted_sigma", "expected_coverage"), [(1.0, 0.8), (0.5, 2 * stats.norm.cdf(1.2816 * 0.5) - 1)])
def test_gaussian_head_coverage_and_crps(predicted_sigma: float, expected_coverage: float) -> None:
    ws = _windows(np.random.default_rng(0).normal(size=(20, 14 * 400)))
    y = _targets(ws)  # 8000 windows x 6 steps of N(0, 1)
    model = _Constant([0.0, _softplus_inverse(predicted_sigma - 1e-4)])
    ev = _evaluate(model, GaussianNLLLoss(), ws, _affine(3.0, 5.0))

    assert ev.model["coverage_80"] == pytest.approx(expected_coverage, abs=0.015)
    assert ev.model["coverage_80"] == pytest.approx(np.mean(np.abs(y) <= 1.2815515655 * predicted_sigma), abs=1e-3)
    assert ev.model["CRPS"] == pytest.approx(_gaussian_crps(y, predicted_sigma), rel=1e-3)
    assert ev.model["width_80"] == pytest.approx(2 * 1.2815515655 * predicted_sigma, rel=1e-4)
    # the original scale: same coverage, CRPS and width times the scaler's slope
    assert ev.model_original["coverage_80"] == pytest.approx(ev.model["coverage_80"])
    assert ev.model_original["CRPS"] == pytest.approx(3.0 * ev.model["CRPS"], rel=1e-6)
    assert ev.model_original["width_80"] == pytest.approx(3.0 * ev.model["width_80"], rel=1e-6)
    # the baseline is a point forecast: its CRPS is its MAE; and everything lands in the flat dict
    assert ev.baseline["CRPS"] == pytest.approx(ev.baseline["MAE"])
    assert {"CRPS", "coverage_80", "naive_CRPS", "CRPS_original", "coverage_80_original"} <= set(ev.flat())


def test_calibrated_gaussian_beats_overconfident_on_crps() -> None:
    ws = _windows(np.random.default_rng(1).normal(size=(10, 14 * 200)))
    scores = {
        sigma: _evaluate(
            _Constant([0.0, _softplus_inverse(sigma - 1e-4)]), GaussianNLLLoss(), ws, _affine(1.0, 0.0)
        ).model["CRPS"]
        for sigma in (0.3, 1.0, 3.0)
    }
    assert scores[1.0] < scores[0.3] and scores[1.0] < scores[3.0]  # CRPS is a proper score


def test_quantile_head_coverage_and_crps_of_its_implied_distribution() -> None:
    ws = _windows(np.random.default_rng(2).normal(size=(20, 14 * 400)))
    y = _targets(ws)
    z90 = stats.norm.ppf(0.9)
    # anchor 0 (the median), softplus gaps of z90 below and above: exactly N(0, 1)'s 0.1/0.5/0.9
    raw = [0.0, _softplus_inverse(z90), _softplus_inverse(z90)]
    ev = _evaluate(_Constant(raw), PinballLoss([0.1, 0.5, 0.9]), ws, _affine(2.0, -1.0))
    assert ev.model["coverage_80"] == pytest.approx(0.8, abs=0.015)
    assert ev.model["width_80"] == pytest.approx(2 * z90, rel=1e-4)
    # brute force: the head's distribution is X = Q(U) with Q linear between the levels and flat
    # beyond them; CRPS = E|X - y| - E|X - X'| / 2 by Monte Carlo over X.
    u = np.random.default_rng(9).uniform(size=200_000)
    x = np.interp(u, [0.1, 0.5, 0.9], [-z90, 0.0, z90])
    xs = np.sort(x)
    cum = np.concatenate([[0.0], np.cumsum(xs)])
    sample_y = np.random.default_rng(4).choice(y.ravel(), size=2000, replace=False)
    k = np.searchsorted(xs, sample_y)
    e_xy = (k * sample_y - cum[k] + (cum[-1] - cum[k]) - (len(xs) - k) * sample_y) / len(xs)
    e_xx = 2 * np.sum((2 * np.arange(1, len(xs) + 1) - len(xs) - 1) * xs) / len(xs) ** 2
    brute = np.mean(e_xy) - e_xx / 2
    # the library's CRPS of the same distribution at the same points
    grid = np.interp(np.asarray(CRPS_LEVELS), [0.1, 0.5, 0.9], [-z90, 0.0, z90])
    library = crps_from_quantiles(sample_y[:, None], np.broadcast_to(grid, (len(sample_y), 1, len(grid))))
    assert float(library.mean()) == pytest.approx(brute, rel=5e-3)
    # and the evaluation reports that same quantity over all test points
    full = crps_from_quantiles(y, np.broadcast_to(grid, (*y.shape, len(grid))))
    assert ev.model["CRPS"] == pytest.approx(float(full.mean()), rel=1e-5)
    assert ev.model_original["CRPS"] == pytest.approx(2.0 * ev.model["CRPS"], rel=1e-6)


def test_point_loss_has_no_distribution_metrics() -> None:
    ws = _windows(np.random.default_rng(3).normal(size=(2, 14 * 10)))
    ev = _evaluate(_Constant([0.0]), MSELoss(), ws, _affine(1.0, 0.0))
    assert not {"CRPS", "coverage_80", "pinball"} & set(ev.flat())


def test_non_affine_inverse_is_refused() -> None:
    ws = _windows(np.random.default_rng(5).normal(size=(2, 14 * 10)))
    with pytest.raises(TrainingError, match="affine"):
        _evaluate(_Constant([0.0, 0.0]), GaussianNLLLoss(), ws, lambda v, ids: np.exp(np.asarray(v, np.float64)))
