"""Point losses against torch.nn.functional, and their point/quantile behaviour."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tsdl.config.loss import LossConfig
from tsdl.errors import TrainingError
from tsdl.losses import LOSSES, build_loss


def _pred_target(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(4, 6, 1, generator=gen), torch.randn(4, 6, generator=gen)


def test_mse_and_mae_match_torch_functional() -> None:
    pred, target = _pred_target()
    mse, mae = build_loss(LossConfig(name="mse")), build_loss(LossConfig(name="mae"))
    torch.testing.assert_close(mse(pred, target), F.mse_loss(pred[..., 0], target))
    torch.testing.assert_close(mae(pred, target), F.l1_loss(pred[..., 0], target))


@pytest.mark.parametrize("threads", [1, 2])
def test_mse_loss_and_gradient_are_bitwise_the_formulas(threads: int) -> None:
    """mean((pred - target)^2) and its autograd gradient, bit for bit, on a DLinear ETTh1 batch
    (224 windows x 96 steps): the fused kernel changes speed, not what is learned."""
    mse, previous = build_loss(LossConfig(name="mse")), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for seed in range(5):
            gen = torch.Generator().manual_seed(seed)
            pred = torch.randn(224, 96, 1, generator=gen, requires_grad=True)
            target = torch.randn(224, 96, generator=gen)
            got = mse(pred, target)
            want = torch.mean((pred[..., 0] - target) ** 2)
            assert torch.equal(got, want)
            assert torch.equal(torch.autograd.grad(got, pred)[0], torch.autograd.grad(want, pred)[0])
    finally:
        torch.set_num_threads(previous)


def test_log_mse_is_mse_in_log1p_space_and_points_back_with_expm1() -> None:
    pred, target = _pred_target()
    target = target.abs() * 10
    loss = build_loss(LossConfig(name="log_mse"))
    torch.testing.assert_close(loss(pred, target), F.mse_loss(pred[..., 0], torch.log1p(target)))
    torch.testing.assert_close(loss.point(torch.log1p(target)[..., None]), target)


def test_log_mse_rejects_negative_targets_with_a_fix() -> None:
    pred, target = _pred_target()
    with pytest.raises(TrainingError, match="non-negative targets.*data.scaler"):
        build_loss(LossConfig(name="log_mse"))(pred, target)


@pytest.mark.parametrize("name", ["mse", "mae"])
def test_point_losses_are_one_output_without_quantiles(name: str) -> None:
    pred, _ = _pred_target()
    loss = build_loss(LossConfig(name=name))
    assert (loss.n_outputs, loss.is_probabilistic) == (1, False)
    torch.testing.assert_close(loss.point(pred), pred[..., 0])
    assert loss.quantiles(pred, [0.1, 0.9]) is None


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(TrainingError, match=r"pred \[4, 6, 3\] and target \[4, 6\]"):
        build_loss(LossConfig(name="mse"))(torch.zeros(4, 6, 3), torch.zeros(4, 6))


def test_every_config_loss_name_is_registered() -> None:
    from typing import get_args

    from tsdl.config.loss import LossName

    assert set(LOSSES) == set(get_args(LossName))
    assert all(LOSSES[name].name == name for name in LOSSES)
