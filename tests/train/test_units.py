"""Training building blocks that need no Ray: early stopping, precision, seeds, checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tsdl.errors import TrainingError
from tsdl.train.checkpointing import BestWeights, TrainState, load_best, load_last, save_checkpoint
from tsdl.train.early_stopping import EarlyStopping
from tsdl.train.precision import MixedPrecision
from tsdl.train.seeding import epoch_seed, rng_state, seed_everything, set_rng_state


def test_early_stopping_counts_epochs_without_improvement() -> None:
    stopper = EarlyStopping(patience=2, min_delta=0.01)
    assert stopper.update(1.0, epoch=1)
    assert not stopper.update(0.995, epoch=2)  # within min_delta: not an improvement
    assert not stopper.should_stop
    assert not stopper.update(1.2, epoch=3)
    assert stopper.should_stop and stopper.best_epoch == 1
    again = EarlyStopping(patience=2)
    again.load_state_dict(stopper.state_dict())
    assert again.should_stop and again.best == 1.0


def test_disabled_early_stopping_never_stops() -> None:
    stopper = EarlyStopping(patience=1, enabled=False)
    stopper.update(1.0, 1)
    stopper.update(2.0, 2)
    assert not stopper.should_stop


def test_fp16_on_cpu_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="16-mixed.*CUDA"):
        MixedPrecision("16-mixed", torch.device("cpu"))


def test_bf16_autocast_runs_on_cpu() -> None:
    amp = MixedPrecision("bf16-mixed", torch.device("cpu"))
    layer = torch.nn.Linear(4, 2)
    with amp.autocast():
        out = layer(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    assert not amp.scaler.is_enabled()


def test_fp32_leaves_dtypes_alone() -> None:
    amp = MixedPrecision("32", torch.device("cpu"))
    with amp.autocast():
        out = torch.nn.Linear(4, 2)(torch.randn(3, 4))
    assert out.dtype == torch.float32


def test_seeding_reproduces_and_rng_state_round_trips() -> None:
    seed_everything(7, deterministic=False)
    a = torch.randn(5)
    seed_everything(7, deterministic=False)
    state = rng_state()
    b = torch.randn(5)
    set_rng_state(state)
    c = torch.randn(5)
    assert torch.equal(a, b) and torch.equal(b, c)
    assert epoch_seed(42, 1, 0) != epoch_seed(42, 2, 0) != epoch_seed(42, 1, 1)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters())
    last = TrainState(
        epoch=4, model=model.state_dict(), optimizer=opt.state_dict(), scheduler={}, grad_scaler={},
        early_stopping={"best": 0.5}, rng=rng_state(), history=[{"epoch": 1.0}], global_step=40,
    )
    best = BestWeights(epoch=3, val_loss=0.5, model=model.state_dict(), config={}, dims={"x": 1}, scaler_state={})
    save_checkpoint(tmp_path, last=last, best=best)
    assert load_last(tmp_path).epoch == 4 and load_last(tmp_path).global_step == 40
    restored = load_best(tmp_path)
    assert restored.epoch == 3 and torch.equal(restored.model["weight"], model.weight.detach())
    with pytest.raises(TrainingError, match="best.pt"):
        load_best(tmp_path / "missing")
