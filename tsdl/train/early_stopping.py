"""Early stopping on a monitored loss, with state that survives checkpoints."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["EarlyStopping"]


@dataclass
class EarlyStopping:
    """Stop after `patience` validations without an improvement larger than `min_delta`."""

    patience: int
    min_delta: float = 0.0
    enabled: bool = True
    best: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record one validation; returns True when it is a new best."""
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.enabled and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
