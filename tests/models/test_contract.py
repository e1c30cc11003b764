"""Every registered model x a few losses: shape, finiteness, gradients, determinism, covariates."""

from __future__ import annotations

import pytest
import torch

from tests.models._contract import DIMS, make_inputs, make_model
from tsdl.config.loss import LossConfig
from tsdl.losses import LOSSES, build_loss
from tsdl.models import MODELS

# One loss per head shape (point, quantile, distribution, count); named, so a rename fails here.
_LOSS_NAMES = ["mse", "pinball", "gaussian_nll", "zinb"]
_COVARIATES = {"none": (1, 0, 0), "all": (3, 2, 4)}


def test_contract_losses_are_registered() -> None:
    """A renamed or removed loss must fail loudly, not shrink the contract matrix."""
    missing = sorted(set(_LOSS_NAMES) - set(LOSSES))
    assert not missing, f"contract losses not in the registry: {missing}"


@pytest.mark.parametrize("covariates", sorted(_COVARIATES))
@pytest.mark.parametrize("loss_name", _LOSS_NAMES)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_forward_backward_contract(model_name: str, loss_name: str, covariates: str) -> None:
    n_past, n_future, n_static = _COVARIATES[covariates]
    loss = build_loss(LossConfig(name=loss_name))
    norm = {} if loss.supports_instance_norm else {"instance_norm": "none"}
    model = make_model(
        model_name, n_past=n_past, n_future=n_future, n_static=n_static, loss=loss, **norm
    )
    past, future, static = make_inputs(4, n_past=n_past, n_future=n_future, n_static=n_static)

    out = model(past, future, static)

    assert out.shape == (4, DIMS["output_chunk_length"], loss.n_outputs)
    assert torch.isfinite(out).all()
    target = past[:, -DIMS["output_chunk_length"] :, 0].abs().round()
    loss(out, target).backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_same_seed_same_model_and_output(model_name: str) -> None:
    past, future, static = make_inputs(3, n_past=2, n_future=1, n_static=1)
    first = make_model(model_name, n_past=2, n_future=1, n_static=1, seed=7).eval()
    second = make_model(model_name, n_past=2, n_future=1, n_static=1, seed=7).eval()
    other = make_model(model_name, n_past=2, n_future=1, n_static=1, seed=8).eval()

    with torch.no_grad():
        a, b, c = (m(past, future, static) for m in (first, second, other))

    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_batch_of_one_trains_and_predicts(model_name: str) -> None:
    model = make_model(model_name, n_past=2, n_future=1, n_static=1)
    past, future, static = make_inputs(1, n_past=2, n_future=1, n_static=1)

    model.train()
    model(past, future, static).sum().backward()
    model.eval()
    with torch.no_grad():
        out = model(past, future, static)

    assert out.shape == (1, DIMS["output_chunk_length"], 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_eval_output_does_not_depend_on_other_batch_rows(model_name: str) -> None:
    model = make_model(model_name, n_past=2, n_future=1, n_static=1).eval()
    past, future, static = make_inputs(5, n_past=2, n_future=1, n_static=1)

    with torch.no_grad():
        full = model(past, future, static)
        single = model(past[2:3], future[2:3], static[2:3])

    torch.testing.assert_close(full[2:3], single, rtol=1e-5, atol=1e-5)
