"""The epoch-level learning-rate schedule (`training.lr_scheduler`), stepped once per validation."""

from __future__ import annotations

from typing import Any

import torch

from tsdl.config.training import LRSchedulerConfig

__all__ = ["EpochDecay", "build_scheduler"]


class EpochDecay:
    """Multiply every group's lr by `factor` after each epoch from `start` on (not below `min_lr`).

    In place and multiplicative, like ReduceLROnPlateau, so a fine-tuning warm-up (which also
    scales the lr in place) composes with it. ``step(val_loss)`` ignores the loss: one signature
    for both schedules.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, factor: float, start: int, min_lr: float) -> None:
        self.optimizer, self.factor, self.start, self.min_lr = optimizer, factor, start, min_lr
        self.epochs = 0

    def step(self, val_loss: float | None = None) -> None:
        self.epochs += 1
        if self.epochs >= self.start:
            for group in self.optimizer.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs = int(state["epochs"])


def build_scheduler(optimizer: torch.optim.Optimizer, config: LRSchedulerConfig) -> Any:
    """The configured schedule; ``step(val_loss)`` after every epoch's validation.

    A disabled schedule is a plateau schedule that never fires (infinite patience), so the loop and
    its checkpoints keep one shape.
    """
    if config.name == "step" and config.enabled:
        return EpochDecay(optimizer, factor=config.factor, start=config.step_start, min_lr=config.min_lr)
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=config.factor,
        patience=config.patience if config.enabled else 10**9,
        min_lr=config.min_lr,
    )
