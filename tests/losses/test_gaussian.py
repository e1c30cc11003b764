"""Gaussian head: NLL vs torch, CRPS vs numerical integration, quantiles vs scipy, short fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, stats

from tests.losses._fit import fit_constant_head
from tsdl.config.loss import LossConfig
from tsdl.losses import build_loss
from tsdl.losses.gaussian import gaussian_crps


def _pred_target() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(4, 5, 2, generator=gen, dtype=torch.float64), torch.randn(
        4, 5, generator=gen, dtype=torch.float64
    )


def test_nll_matches_torch_gaussian_nll_loss() -> None:
    pred, target = _pred_target()
    loss = build_loss(LossConfig(name="gaussian_nll"))
    loc, scale = loss.domain_map(pred)
    reference = F.gaussian_nll_loss(loc, target, scale**2, full=True, eps=1e-12)
    torch.testing.assert_close(loss(pred, target), reference)


def test_closed_form_crps_matches_numerical_integration() -> None:
    for mu, sigma, y in [(0.0, 1.0, 0.0), (1.5, 0.3, 0.9), (-2.0, 4.0, 5.0)]:
        exact, _ = integrate.quad(
            lambda x, m=mu, s=sigma, t=y: (stats.norm.cdf(x, m, s) - float(x >= t)) ** 2,
            mu - 12 * sigma,
            mu + 12 * sigma,
            points=[y],
        )
        closed = gaussian_crps(*(torch.tensor(v, dtype=torch.float64) for v in (mu, sigma, y)))
        assert closed.item() == pytest.approx(exact, rel=1e-6)


def test_crps_loss_is_the_mean_closed_form() -> None:
    pred, target = _pred_target()
    loss = build_loss(LossConfig(name="crps_gaussian"))
    loc, scale = loss.domain_map(pred)
    torch.testing.assert_close(loss(pred, target), gaussian_crps(loc, scale, target).mean())


def test_point_and_quantiles_follow_the_normal_distribution() -> None:
    pred, _ = _pred_target()
    loss = build_loss(LossConfig(name="gaussian_nll"))
    loc, scale = loss.domain_map(pred)
    assert (scale > 0).all() and loss.is_probabilistic and loss.n_outputs == 2
    torch.testing.assert_close(loss.point(pred), loc)
    levels = [0.05, 0.5, 0.975]
    expected = stats.norm.ppf(levels, loc.numpy()[..., None], scale.numpy()[..., None])
    np.testing.assert_allclose(loss.quantiles(pred, levels).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("name", ["gaussian_nll", "crps_gaussian"])
def test_short_fit_recovers_mean_and_scale(name: str) -> None:
    loss = build_loss(LossConfig(name=name))
    samples = torch.from_numpy(stats.norm.rvs(3.0, 0.5, size=2000, random_state=1))
    loc, scale = loss.domain_map(fit_constant_head(loss, samples))
    assert loc.item() == pytest.approx(3.0, abs=0.05)
    assert scale.item() == pytest.approx(0.5, abs=0.05)
