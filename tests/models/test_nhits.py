"""N-HiTS: pooling defaults and validation, interpolated block forecasts, learning."""

from __future__ import annotations

import pytest
import torch

from tests.models._contract import DIMS, make_inputs, make_model
from tests.models._fit import fit_sines
from tsdl.errors import ConfigError
from tsdl.models.nhits import default_pooling_sizes


def test_default_pooling_is_decreasing_powers_of_two() -> None:
    assert default_pooling_sizes(3) == [4, 2, 1]
    model = make_model("nhits", n_blocks=3)
    assert [block.pool.kernel_size for block in model.blocks] == [4, 2, 1]
    H = DIMS["output_chunk_length"]
    assert [block.n_coefficients for block in model.blocks] == [H // 4, H // 2, H]


def test_only_the_last_block_has_no_backcast() -> None:
    model = make_model("nhits", n_blocks=3)
    assert [block.backcast is None for block in model.blocks] == [False, False, True]


def test_coarse_block_forecast_is_linear_between_coefficients() -> None:
    model = make_model("nhits", n_blocks=2, pooling_sizes=[8, 1]).eval()
    block = model.blocks[0]  # H=8 -> one coefficient per output: a constant forecast
    past, _, _ = make_inputs(2)
    with torch.no_grad():
        _, forecast = block(past[..., 0], torch.zeros(2, 0))
    torch.testing.assert_close(forecast, forecast[:, :1].expand_as(forecast))


@pytest.mark.parametrize(
    ("pools", "match"), [([2], "one entry per block"), ([64, 1], r"in \[1, 32\]")]
)
def test_bad_pooling_sizes_name_the_field(pools: list[int], match: str) -> None:
    with pytest.raises(ConfigError, match=f"model.pooling_sizes.*{match}"):
        make_model("nhits", n_blocks=2, pooling_sizes=pools)


def test_learns_to_continue_sines() -> None:
    assert fit_sines(make_model("nhits", dropout=0.0), steps=100) < 0.01


@pytest.mark.parametrize("n_in", [1, 2, 3, 12, 24, 96])
@pytest.mark.parametrize("n_out", [1, 2, 7, 24, 96, 720])
def test_upsampling_matrix_equals_linear_interpolation(n_in: int, n_out: int) -> None:
    """The matmul that replaced F.interpolate (no deterministic CUDA backward) gives its values."""
    import torch.nn.functional as F

    from tsdl.models.nhits import linear_interpolation_matrix

    x = torch.randn(4, 3, n_in, generator=torch.Generator().manual_seed(n_in * 1000 + n_out))
    expected = F.interpolate(x, size=n_out, mode="linear", align_corners=True)
    torch.testing.assert_close(x @ linear_interpolation_matrix(n_in, n_out), expected, rtol=1e-6, atol=1e-6)

