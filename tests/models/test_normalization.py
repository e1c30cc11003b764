"""Instance normalization for every model: the loss maps every output parameter back.

Scaling a window's target by ``k`` and shifting it by ``c`` must move the whole forecast
distribution the same way: location ``k * mu + c``, Gaussian scale ``k * sigma``, every quantile
``k * q + c``. Before, PatchTST's RevIN de-normalized only output channel 0, so a 10x input gave
a 10x location but the same sigma and the same quantile spread.
"""

from __future__ import annotations

import pytest
import torch

from tests.models._contract import make_inputs, make_model
from tsdl.config import parse_config
from tsdl.config.loss import LossConfig
from tsdl.errors import ConfigError
from tsdl.losses import LOSSES, build_loss
from tsdl.models import MODELS
from tsdl.models.normalization import InstanceNorm

_LOCATION_SCALE = sorted(
    name for name in LOSSES if build_loss(LossConfig(name=name)).supports_instance_norm
)
_LOG_SCALE = sorted(set(LOSSES) - set(_LOCATION_SCALE))
_LEVELS = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]
K, C = 10.0, 3.0


def _parameters(loss, out: torch.Tensor) -> dict[str, torch.Tensor]:
    params = {"point": loss.point(out)}
    q = loss.quantiles(out, _LEVELS)
    if q is not None:
        params["quantiles"] = q
    if loss.name in {"gaussian_nll", "crps_gaussian"}:
        params["sigma"] = loss.domain_map(out)[1]
    return params


@pytest.mark.parametrize("mode", ["revin", "mean_std", "robust"])
@pytest.mark.parametrize("loss_name", _LOCATION_SCALE)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_scaling_the_input_scales_every_output_parameter(
    model_name: str, loss_name: str, mode: str
) -> None:
    loss = build_loss(LossConfig(name=loss_name))
    model = make_model(
        model_name, n_past=2, n_future=1, n_static=1, loss=loss, instance_norm=mode
    ).eval()
    if mode == "revin":  # a trained affine map, not the identity it starts as
        with torch.no_grad():
            model.instance_norm.affine_weight.fill_(0.2)
            model.instance_norm.affine_bias.fill_(0.3)
    past, future, static = make_inputs(4, n_past=2, n_future=1, n_static=1)
    moved = past.clone()
    moved[..., 0] = K * past[..., 0] + C  # covariates stay as they are
    with torch.no_grad():
        base = _parameters(loss, model(past, future, static))
        after = _parameters(loss, model(moved, future, static))
    assert base["point"].abs().max() > 1e-3  # the check below is not vacuous
    torch.testing.assert_close(after["point"], K * base["point"] + C, rtol=1e-4, atol=1e-3)
    floor = 3e-3 if "sigma" in base else 1e-3  # the Gaussian's 1e-4 sigma floor is not scaled
    if "quantiles" in base:
        torch.testing.assert_close(
            after["quantiles"], K * base["quantiles"] + C, rtol=1e-4, atol=floor
        )
        spread = base["quantiles"][..., -1] - base["quantiles"][..., 0]
        torch.testing.assert_close(
            after["quantiles"][..., -1] - after["quantiles"][..., 0],
            K * spread,
            rtol=1e-4,
            atol=floor,
        )
    if "sigma" in base:
        # sigma = scale * softplus(raw) + 1e-4: equivariant up to the (unscaled) 1e-4 floor
        torch.testing.assert_close(
            after["sigma"], K * base["sigma"], rtol=1e-4, atol=(K + 1) * 1e-4
        )


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_revin_affine_parameters_learn(model_name: str) -> None:
    loss = build_loss(LossConfig(name="gaussian_nll"))
    model = make_model(
        model_name, n_past=2, n_future=1, n_static=1, loss=loss, instance_norm="revin"
    )
    past, future, static = make_inputs(4, n_past=2, n_future=1, n_static=1)
    out = model(past, future, static)
    loss(out, past[:, -out.shape[1] :, 0]).backward()
    assert model.instance_norm.affine_weight.grad.abs().sum() > 0
    assert model.instance_norm.affine_bias.grad.abs().sum() > 0


def test_robust_statistics_ignore_an_outlier() -> None:
    x = torch.linspace(0.0, 1.0, 21).repeat(2, 1)
    x[1, 3] = 1000.0
    _, loc, scale = InstanceNorm("robust")(x.unsqueeze(-1))
    torch.testing.assert_close(loc[0], torch.tensor([0.5]))
    assert abs(float(scale[1]) - float(scale[0])) < 0.1  # the outlier barely moves the IQR
    flat = torch.zeros(1, 20)
    flat[0, -1] = 1.0  # IQR 0: falls back to the std, never divides by ~0
    _, _, scale = InstanceNorm("robust")(flat.unsqueeze(-1))
    assert float(scale) > 0.1


@pytest.mark.parametrize("loss_name", _LOG_SCALE)
def test_log_scale_losses_refuse_instance_norm_at_validation(loss_name: str) -> None:
    assert _LOG_SCALE == ["log_mse", "tweedie", "zinb"]
    with pytest.raises(
        ConfigError,
        match=f"model.instance_norm='revin' cannot be undone for loss.name='{loss_name}'",
    ):
        parse_config(
            {"model": {"name": "dlinear", "instance_norm": "revin"}, "loss": {"name": loss_name}}
        )
    with pytest.raises(ConfigError, match="set model.instance_norm: none"):  # PatchTST's default
        parse_config({"model": {"name": "patchtst"}, "loss": {"name": loss_name}})
    config = parse_config(  # log-scale losses also need unscaled (non-negative) targets
        {
            "model": {"name": "patchtst", "instance_norm": "none"},
            "loss": {"name": loss_name},
            "data": {"scaler": "none"},
        }
    )
    assert config.model.instance_norm == "none"
    with pytest.raises(ConfigError, match="log/count scale"):
        build_loss(LossConfig(name=loss_name)).rescale(
            torch.zeros(1, 2, 3), torch.zeros(1, 1), torch.ones(1, 1)
        )


def test_a_model_with_instance_norm_needs_its_loss() -> None:
    from tests.models._contract import DIMS, small_config
    from tsdl.models import build_model

    with pytest.raises(ConfigError, match="needs the loss"):
        build_model(
            small_config("dlinear", instance_norm="mean_std"),
            **DIMS,
            n_past_features=1,
            n_future_features=0,
            n_static=0,
            n_outputs=1,
        )


@pytest.mark.parametrize("mode", ["revin", "mean_std", "robust"])
def test_the_inverse_map_returns_the_raw_lookback_exactly(mode: str) -> None:
    # Equivariance holds for any loc = center + f*spread, scale = g*spread; only a round trip
    # pins the inverse itself: loc + scale * z must give back the raw values.
    norm = InstanceNorm(mode).double()
    if mode == "revin":  # a trained affine map, not the identity it starts as
        with torch.no_grad():
            norm.affine_weight.fill_(-0.7)
            norm.affine_bias.fill_(0.4)
    past = torch.randn(5, 24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    past[..., 0] = 40.0 * past[..., 0] + 250.0  # a raw scale far from the normalized one
    normalized, loc, scale = norm(past)
    assert not torch.allclose(normalized[..., 0], past[..., 0])
    torch.testing.assert_close(loc + scale * normalized[..., 0], past[..., 0], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(normalized[..., 1:], past[..., 1:], rtol=0, atol=0)  # covariates untouched
