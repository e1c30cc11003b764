"""`training.lr_scheduler`: the per-epoch decay (LTSF-Linear's lradj=type1) and the plateau schedule."""

from __future__ import annotations

import pytest
import torch

from tsdl.config.training import LRSchedulerConfig
from tsdl.train.schedule import EpochDecay, build_scheduler


def _lrs_per_epoch(config: LRSchedulerConfig, epochs: int, val_losses=None) -> list[float]:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.005)
    scheduler = build_scheduler(optimizer, config)
    seen = []
    for epoch in range(epochs):
        seen.append(optimizer.param_groups[0]["lr"])  # the lr the epoch trains with
        scheduler.step(val_losses[epoch] if val_losses else 1.0)
    return seen


def test_step_start_2_is_ltsf_type1_two_epochs_at_lr_then_halved_every_epoch() -> None:
    config = LRSchedulerConfig(name="step", factor=0.5, step_start=2)
    assert _lrs_per_epoch(config, 5) == pytest.approx([0.005, 0.005, 0.0025, 0.00125, 0.000625])
    # Decays whatever validation says, down to min_lr.
    floor = LRSchedulerConfig(name="step", factor=0.1, min_lr=1e-4)
    assert _lrs_per_epoch(floor, 4) == pytest.approx([0.005, 0.0005, 0.0001, 0.0001])


def test_step_schedule_resumes_where_it_stopped() -> None:
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    first = EpochDecay(optimizer, factor=0.5, start=3, min_lr=0.0)
    first.step(), first.step()
    again = EpochDecay(optimizer, factor=0.5, start=3, min_lr=0.0)
    again.load_state_dict(first.state_dict())
    again.step()
    assert optimizer.param_groups[0]["lr"] == 0.5  # the third epoch's step is the first decay


def test_plateau_schedule_unchanged_and_disabled_schedule_never_fires() -> None:
    assert _lrs_per_epoch(LRSchedulerConfig(patience=0), 3, [1.0, 2.0, 3.0]) == pytest.approx([0.005, 0.005, 0.0025])
    assert _lrs_per_epoch(LRSchedulerConfig(patience=0, enabled=False), 3, [1.0, 2.0, 3.0]) == [0.005] * 3


@pytest.mark.parametrize(("raw", "word"), [
    ({"name": "step", "patience": 2}, "patience applies to name: plateau only"),
    ({"step_start": 2}, "step_start applies to name: step only"),
    ({"name": "cosine"}, "name"),
])
def test_options_of_the_other_schedule_are_refused(raw: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        LRSchedulerConfig(**raw)


def test_a_dumped_step_config_loads_again() -> None:
    config = LRSchedulerConfig(name="step", step_start=2)
    assert LRSchedulerConfig.model_validate(config.model_dump()) == config
