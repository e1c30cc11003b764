"""`training.optimizer.implementation`: AdamW's kernel is a validated, opt-in config choice."""

from __future__ import annotations

import pytest
import torch

from tsdl.config import parse_config
from tsdl.errors import ConfigError
from tsdl.train.worker import adamw


def _losses(implementation: str) -> list[float]:
    config = parse_config({"training": {"optimizer": {"implementation": implementation, "lr": 0.01}}})
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    optimizer = adamw(model.parameters(), config.training.optimizer)
    x, y = torch.randn(32, 8), torch.randn(32, 2)
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


def test_default_is_torchs_default_kernel_and_the_others_are_what_they_say() -> None:
    config = parse_config({})
    assert config.training.optimizer.implementation == "default"
    params = [torch.nn.Parameter(torch.zeros(3))]
    default = adamw(params, config.training.optimizer)
    assert not default.defaults["fused"] and not default.defaults["foreach"]
    for name in ("foreach", "fused"):
        chosen = parse_config({"training": {"optimizer": {"implementation": name}}}).training.optimizer
        assert adamw(params, chosen).defaults[name] is True


def test_every_kernel_trains_the_same_to_float_precision() -> None:
    reference = _losses("default")
    for name in ("foreach", "fused"):
        torch.testing.assert_close(_losses(name), reference, rtol=1e-5, atol=1e-6)


def test_an_unknown_kernel_is_one_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="training.optimizer.implementation"):
        parse_config({"training": {"optimizer": {"implementation": "apex"}}})
