"""Tweedie and ZINB: reference formulas (numpy, scipy), quantiles, non-negativity, short fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tests.losses._fit import fit_constant_head
from tsdl.config.loss import LossConfig
from tsdl.errors import TrainingError
from tsdl.losses import build_loss


def _numpy_tweedie_deviance(y: np.ndarray, mu: np.ndarray, p: float) -> np.ndarray:
    """The scikit-learn formula (``mean_tweedie_deviance``), written out in numpy."""
    return 2 * (
        np.power(np.maximum(y, 0), 2 - p) / ((1 - p) * (2 - p))
        - y * np.power(mu, 1 - p) / (1 - p)
        + np.power(mu, 2 - p) / (2 - p)
    )


@pytest.mark.parametrize("power", [1.1, 1.5, 1.9])
def test_tweedie_matches_the_reference_deviance(power: float) -> None:
    gen = np.random.default_rng(0)
    y = np.where(gen.random((4, 6)) < 0.4, 0.0, gen.gamma(2.0, 3.0, (4, 6)))
    log_mu = gen.normal(0.5, 1.0, (4, 6))
    loss = build_loss(LossConfig(name="tweedie", tweedie_power=power))
    pred = torch.from_numpy(log_mu)[..., None]
    value = loss(pred, torch.from_numpy(y)).item()
    assert value == pytest.approx(
        _numpy_tweedie_deviance(y, np.exp(log_mu), power).mean(), rel=1e-9
    )
    torch.testing.assert_close(loss.point(pred), torch.exp(pred[..., 0]))
    assert loss.quantiles(pred, [0.5]) is None


def test_tweedie_agrees_with_sklearn_when_installed() -> None:
    from sklearn import metrics
    y, log_mu = np.array([0.0, 1.0, 4.0, 0.0]), np.array([0.1, -0.3, 1.2, -2.0])
    loss = build_loss(LossConfig(name="tweedie", tweedie_power=1.3))
    value = loss(torch.from_numpy(log_mu)[None, :, None], torch.from_numpy(y)[None]).item()
    assert value == pytest.approx(metrics.mean_tweedie_deviance(y, np.exp(log_mu), power=1.3))


def test_tweedie_short_fit_finds_the_sample_mean() -> None:
    gen = np.random.default_rng(1)
    counts = gen.poisson(1.2, 3000)
    samples = torch.from_numpy(np.array([gen.gamma(2.0, 1.5, n).sum() for n in counts]))
    loss = build_loss(LossConfig(name="tweedie"))
    mean = loss.point(fit_constant_head(loss, samples)).item()
    assert mean == pytest.approx(samples.mean().item(), rel=0.02)


def _zinb_raw(mu: float, r: float, pi: float) -> torch.Tensor:
    inv_softplus = lambda v: float(np.log(np.expm1(v)))  # noqa: E731
    logit = float(np.log(pi / (1 - pi)))
    return torch.tensor([[[inv_softplus(mu), inv_softplus(r), logit]]], dtype=torch.float64)


def _scipy_zinb_logpmf(y: np.ndarray, mu: float, r: float, pi: float) -> np.ndarray:
    nb = stats.nbinom.logpmf(y, r, r / (r + mu))
    return np.where(y == 0, np.logaddexp(np.log(pi), np.log1p(-pi) + nb), np.log1p(-pi) + nb)


@pytest.mark.parametrize(("mu", "r", "pi"), [(3.0, 2.0, 0.3), (0.4, 0.7, 0.05), (25.0, 10.0, 0.6)])
def test_zinb_nll_matches_scipy_nbinom(mu: float, r: float, pi: float) -> None:
    y = np.arange(0, 60, dtype=np.float64)
    loss = build_loss(LossConfig(name="zinb"))
    raw = _zinb_raw(mu, r, pi).expand(1, y.size, 3)
    value = loss(raw, torch.from_numpy(y)[None]).item()
    assert value == pytest.approx(-_scipy_zinb_logpmf(y, mu, r, pi).mean(), rel=1e-5)


def test_zinb_point_and_quantiles_match_the_mixture() -> None:
    mu, r, pi = 6.0, 1.5, 0.25
    loss = build_loss(LossConfig(name="zinb"))
    raw = _zinb_raw(mu, r, pi)
    assert loss.point(raw).item() == pytest.approx((1 - pi) * mu, rel=1e-6)
    levels = [0.1, 0.3, 0.5, 0.9, 0.99]
    p0 = pi + (1 - pi) * stats.nbinom.pmf(0, r, r / (r + mu))
    expected = [
        0.0 if tau <= p0 else stats.nbinom.ppf((tau - pi) / (1 - pi), r, r / (r + mu))
        for tau in levels
    ]
    np.testing.assert_array_equal(loss.quantiles(raw, levels).flatten().numpy(), expected)


def test_zinb_short_fit_recovers_parameters() -> None:
    rng = np.random.default_rng(2)
    mu, r, pi = 4.0, 2.0, 0.3
    nb = stats.nbinom.rvs(r, r / (r + mu), size=6000, random_state=rng)
    samples = torch.from_numpy(np.where(rng.random(6000) < pi, 0, nb).astype(np.float64))
    loss = build_loss(LossConfig(name="zinb"))
    fitted = [t.item() for t in loss.domain_map(fit_constant_head(loss, samples))]
    np.testing.assert_allclose(fitted, [mu, r, pi], rtol=0.2)


@pytest.mark.parametrize("name", ["tweedie", "zinb"])
def test_negative_targets_are_rejected(name: str) -> None:
    loss = build_loss(LossConfig(name=name))
    with pytest.raises(TrainingError, match=f"{name}.*non-negative"):
        loss(torch.zeros(2, 3, loss.n_outputs), -torch.ones(2, 3))
