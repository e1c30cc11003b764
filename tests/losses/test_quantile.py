"""Pinball and quantile-CRPS losses: brute force, non-crossing head, interpolation, CRPS limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from tests.losses._fit import fit_constant_head
from tsdl.config.loss import LossConfig
from tsdl.losses import CRPSQuantileLoss, PinballLoss, build_loss


def _raw_from_quantiles(loss: PinballLoss, quantiles: torch.Tensor) -> torch.Tensor:
    """Invert the head: anchor value, then softplus^-1 of the gaps below (outwards) and above."""
    a = loss._anchor
    inv = torch.log(torch.expm1(quantiles[..., 1:] - quantiles[..., :-1]))
    below, above = inv[..., :a].flip(-1), inv[..., a:]
    return torch.cat([quantiles[..., a : a + 1], below, above], dim=-1)


def test_pinball_matches_a_brute_force_loop() -> None:
    levels = [0.1, 0.5, 0.9]
    loss = build_loss(LossConfig(name="pinball", quantiles=levels))
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 4, 3, generator=gen), torch.randn(3, 4, generator=gen)
    q = loss.domain_map(pred)
    total = 0.0
    for b in range(3):
        for h in range(4):
            for i, tau in enumerate(levels):
                err = float(target[b, h] - q[b, h, i])
                total += tau * err if err >= 0 else (tau - 1) * err
    torch.testing.assert_close(loss(pred, target).item(), total / (3 * 4 * 3), rtol=1e-5, atol=0)


def test_head_never_crosses_and_round_trips() -> None:
    loss = PinballLoss([0.05, 0.2, 0.5, 0.7, 0.95])
    raw = 20 * torch.randn(64, 8, 5, generator=torch.Generator().manual_seed(1))
    q = loss.domain_map(raw)
    assert (q[..., 1:] >= q[..., :-1]).all()
    expected = torch.tensor([-1.0, -0.3, 0.2, 0.5, 1.7]).expand(2, 3, 5)
    torch.testing.assert_close(loss.domain_map(_raw_from_quantiles(loss, expected)), expected)


def test_point_is_the_median_and_quantiles_interpolate_flat_outside() -> None:
    loss = PinballLoss([0.1, 0.4, 0.8])
    q = torch.tensor([[[0.0, 1.0, 3.0]]])
    raw = _raw_from_quantiles(loss, q)
    # 0.5 lies a quarter of the way from 0.4 to 0.8
    torch.testing.assert_close(loss.point(raw), torch.tensor([[1.5]]))
    out = loss.quantiles(raw, [0.01, 0.1, 0.25, 0.8, 0.99])
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.0, 0.5, 3.0, 3.0]]]))
    assert loss.is_probabilistic and loss.n_outputs == 3


def test_crps_quantile_converges_to_the_gaussian_crps() -> None:
    levels = [i / 200 for i in range(1, 200)]
    loss = CRPSQuantileLoss(levels)
    mu, sigma, y = 0.3, 1.7, 1.1
    q = torch.tensor(stats.norm.ppf(levels, loc=mu, scale=sigma), dtype=torch.float64)
    raw = _raw_from_quantiles(loss, q.reshape(1, 1, -1))
    exact, _ = integrate.quad(
        lambda x: (stats.norm.cdf(x, mu, sigma) - float(x >= y)) ** 2, -30, 30, points=[y]
    )
    approx = loss(raw, torch.tensor([[y]], dtype=torch.float64)).item()
    assert math.isclose(approx, exact, rel_tol=0.02)


def test_crps_quantile_weights_cover_the_unit_interval() -> None:
    loss = CRPSQuantileLoss([0.1, 0.5, 0.9])
    torch.testing.assert_close(loss.weights, torch.tensor([0.3, 0.4, 0.3]))


@pytest.mark.parametrize("name", ["pinball", "crps_quantile"])
def test_fitted_quantiles_recover_the_sampling_distribution(name: str) -> None:
    levels = [0.1, 0.5, 0.9]
    loss = build_loss(LossConfig(name=name, quantiles=levels))
    samples = torch.from_numpy(stats.norm.rvs(2.0, 1.5, size=4000, random_state=0))
    raw = fit_constant_head(loss, samples)
    fitted = loss.quantiles(raw, levels).flatten().numpy()
    np.testing.assert_allclose(fitted, stats.norm.ppf(levels, 2.0, 1.5), atol=0.12)
