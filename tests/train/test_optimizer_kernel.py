"""`training.optimizer.implementation`: AdamW's kernel is a validated config choice; ``auto`` (the
default) is ``fused`` on CPU and torch's default on CUDA, and a resumed run keeps the config's."""

from __future__ import annotations

import pytest
import torch

from tsdl.config import parse_config
from tsdl.errors import ConfigError
from tsdl.train.checkpoint_store import Restored
from tsdl.train.checkpointing import TrainState
from tsdl.train.early_stopping import EarlyStopping
from tsdl.train.kernels import adamw_kernel
from tsdl.train.precision import MixedPrecision
from tsdl.train.schedule import build_scheduler
from tsdl.train.seeding import rng_state
from tsdl.train.worker import _Resumable, adamw


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
        losses.append(float(loss.detach()))
    return losses


def test_auto_is_the_default_fused_on_cpu_torchs_choice_on_cuda_and_the_others_are_what_they_say() -> None:
    config = parse_config({})
    assert config.training.optimizer.implementation == "auto"
    assert adamw_kernel("auto", "cpu") == "fused" and adamw_kernel("auto", "cuda") == "default"
    params = [torch.nn.Parameter(torch.zeros(3))]
    auto = adamw(params, config.training.optimizer, "cpu")
    assert auto.defaults["fused"] is True and not auto.defaults["foreach"]
    torchs = adamw(params, parse_config({"training": {"optimizer": {"implementation": "default"}}}).training.optimizer)
    assert not torchs.defaults["fused"] and not torchs.defaults["foreach"]
    for name in ("foreach", "fused"):
        chosen = parse_config({"training": {"optimizer": {"implementation": name}}}).training.optimizer
        assert adamw(params, chosen, "cuda").defaults[name] is True


def test_a_resumed_optimizer_uses_the_configs_kernel_not_the_one_saved_in_the_checkpoint() -> None:
    # torch's load_state_dict copies the saved param groups whole, kernel flags included.
    model = torch.nn.Linear(4, 1)
    config = parse_config({"training": {"optimizer": {"implementation": "default"}}}).training
    saved_by = adamw(model.parameters(), config.optimizer)
    last = TrainState(epoch=1, model=model.state_dict(), optimizer=saved_by.state_dict(),
                      scheduler=build_scheduler(saved_by, config.lr_scheduler).state_dict(),
                      grad_scaler={}, early_stopping=EarlyStopping(patience=1).state_dict(),
                      rng=rng_state(), history=[])
    optimizer = adamw(model.parameters(), parse_config({}).training.optimizer, "cpu")
    state = _Resumable(model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, config.lr_scheduler),
                       amp=MixedPrecision("32", torch.device("cpu")), stopper=EarlyStopping(patience=1))
    state.restore(Restored(path="unused", last=last, best=None))
    assert [(g["fused"], g["foreach"]) for g in optimizer.param_groups] == [(True, None)]


def test_every_kernel_trains_the_same_to_float_precision() -> None:
    reference = _losses("default")
    for name in ("auto", "foreach", "fused"):
        torch.testing.assert_close(_losses(name), reference, rtol=1e-5, atol=1e-6)


def test_an_unknown_kernel_is_one_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="training.optimizer.implementation"):
        parse_config({"training": {"optimizer": {"implementation": "apex"}}})
