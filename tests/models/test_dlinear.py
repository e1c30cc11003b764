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


def test_cumulative_sum_trend_equals_avgpool_of_the_padded_series_even_at_a_large_level() -> None:
    """The cumulative-sum moving average (the fast path) is the paper's AvgPool1d over the
    edge-padded series to float precision, also for raw data far from zero (level 1e4)."""
    torch.manual_seed(0)
    for level, kernel in ((0.0, 25), (1e4, 25), (1e4, 24), (-3e3, 5)):
        x = level + torch.randn(16, 336).cumsum(dim=1)
        padded = torch.cat([x[:, :1].expand(-1, (kernel - 1) // 2), x, x[:, -1:].expand(-1, kernel // 2)], dim=1)
        reference = torch.nn.functional.avg_pool1d(padded.double().unsqueeze(1), kernel, stride=1).squeeze(1)
        decomposition = SeriesDecomposition(kernel)
        assert decomposition.uses_cumsum(x)
        _, trend = decomposition(x)
        pooled = decomposition._by_pooling(x)  # the CUDA path
        tolerance = 1e-5 * float(x.abs().max())  # float32 rounding of values this large
        for got in (trend, pooled):
            assert float((got.double() - reference).abs().max()) <= tolerance, (level, kernel)


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


def test_mean_init_starts_every_output_at_the_lookback_mean() -> None:
    """model.init=mean: both maps' weights are 1/L, so (biases aside) the first forecast of any
    lookback is its mean at every horizon step, and of a constant series that constant."""
    L, H = DIMS["input_chunk_length"], DIMS["output_chunk_length"]
    torch.manual_seed(1)
    past = torch.randn(4, L, 1).cumsum(dim=1) + 10.0
    future, static = torch.zeros(4, H, 0), torch.zeros(4, 0)
    for name, past_ in (("walk", past), ("constant", torch.full((4, L, 1), 3.5))):
        mean_model = make_model("dlinear", init="mean")
        bias = (mean_model.seasonal.bias + mean_model.trend.bias).reshape(1, H, 1)
        got = mean_model(past_, future, static) - bias
        expected = past_.mean(dim=1, keepdim=True).expand(-1, H, -1)
        torch.testing.assert_close(got, expected, msg=name)
    default = make_model("dlinear")
    got = default(past, future, static) - (default.seasonal.bias + default.trend.bias).reshape(1, H, 1)
    assert float((got - past.mean(dim=1, keepdim=True)).abs().max().detach()) > 1.0  # torch's init is not the mean


def test_mean_init_still_learns_to_continue_sines() -> None:
    assert fit_sines(make_model("dlinear", init="mean"), steps=150) < 1e-3
