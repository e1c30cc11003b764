"""DLinear: the decomposition is exact, edge padding keeps constants constant, it fits a sine."""

from __future__ import annotations

import torch

from tests.models._contract import DIMS, make_model
from tests.models._fit import fit_sines
from tsdl.models.dlinear import SeriesDecomposition


def test_decomposition_sums_back_to_the_input() -> None:
    x = torch.randn(3, 50)
    for kernel in (1, 4, 25):
        seasonal, trend = SeriesDecomposition(kernel)(x)
        assert trend.shape == x.shape
        torch.testing.assert_close(seasonal + trend, x)


def test_trend_matches_a_hand_computed_edge_padded_moving_average() -> None:
    x = torch.tensor([[1.0, 2.0, 4.0, 8.0, 16.0]])
    _, trend = SeriesDecomposition(3)(x)
    padded = [1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 16.0]
    expected = [sum(padded[i : i + 3]) / 3 for i in range(5)]
    torch.testing.assert_close(trend, torch.tensor([expected]))


def test_constant_series_has_constant_trend_and_zero_seasonal() -> None:
    seasonal, trend = SeriesDecomposition(25)(torch.full((2, 30), 3.5))
    torch.testing.assert_close(trend, torch.full((2, 30), 3.5))
    torch.testing.assert_close(seasonal, torch.zeros(2, 30))


def test_without_covariates_it_is_two_linear_maps_only() -> None:
    model = make_model("dlinear")
    L, H = DIMS["input_chunk_length"], DIMS["output_chunk_length"]
    assert model.covariates is None
    assert sum(p.numel() for p in model.parameters()) == 2 * (L * H + H)


def test_learns_to_continue_sines() -> None:
    assert fit_sines(make_model("dlinear"), steps=150) < 1e-3
