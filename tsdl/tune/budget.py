"""Budget presets: how many trials and epochs a study may spend.

``smoke`` finishes in a few minutes on 2 CPUs (a demo, a CI check); ``small`` is a real but
cheap search; ``full`` keeps the config's counts (default 50 + 20 trials). A small budget also
tunes fewer params: at most ``stage1_trials // 2`` (TPE needs a few trials per dimension), the
low-priority ones frozen at the config's values first (see :mod:`tsdl.tune.space`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tsdl.config import TsdlConfig

__all__ = ["BUDGETS", "Budget", "StudyPlan", "plan_study"]

BudgetName = Literal["smoke", "small", "full"]


@dataclass(frozen=True)
class Budget:
    """Trial counts and per-trial epochs of a preset (None: keep the config's value)."""

    stage1_trials: int | None
    stage2_trials: int | None
    startup_trials: int | None
    max_epochs: int | None
    grace_period: int | None
    reduction_factor: float | None
    limit_train_batches: int | None


BUDGETS: dict[str, Budget] = {
    "smoke": Budget(6, 2, 3, max_epochs=4, grace_period=1, reduction_factor=2.0, limit_train_batches=8),
    "small": Budget(20, 8, 6, max_epochs=12, grace_period=2, reduction_factor=3.0, limit_train_batches=50),
    "full": Budget(None, None, None, None, None, None, None),
}


@dataclass(frozen=True)
class StudyPlan:
    """The resolved numbers of a study, after the budget preset is applied."""

    budget: str
    stage1_trials: int
    stage2_trials: int
    startup_trials: int
    top_k: int
    max_params: int
    max_epochs: int
    grace_period: int
    reduction_factor: float
    limit_train_batches: int | None

    @property
    def full_budget_epochs(self) -> int:
        """Epochs a search without early stopping would run (the ASHA efficiency denominator)."""
        return (self.stage1_trials + self.stage2_trials) * self.max_epochs


def plan_study(config: TsdlConfig, budget: BudgetName | None = None) -> StudyPlan:
    """Resolve ``budget`` (argument, else ``tune.budget``, else the config's own counts)."""
    tune = config.tune
    name = budget or tune.budget or "full"
    preset = BUDGETS[name]
    stage1 = _pick(preset.stage1_trials, tune.stage1_trials)
    max_epochs = _pick(preset.max_epochs, tune.asha.max_epochs)
    limit = preset.limit_train_batches
    if config.training.limit_train_batches is not None:
        limit = min(limit, config.training.limit_train_batches) if limit else config.training.limit_train_batches
    return StudyPlan(
        budget=name,
        stage1_trials=stage1,
        stage2_trials=_pick(preset.stage2_trials, tune.stage2_trials),
        startup_trials=min(_pick(preset.startup_trials, tune.startup_trials), stage1),
        top_k=min(tune.top_k, stage1),
        max_params=tune.max_params or max(1, stage1 // 2),
        max_epochs=max_epochs,
        grace_period=min(_pick(preset.grace_period, tune.asha.grace_period), max_epochs),
        reduction_factor=_pick(preset.reduction_factor, tune.asha.reduction_factor),
        limit_train_batches=limit,
    )


def _pick(preset: int | float | None, configured: int | float) -> int | float:
    return configured if preset is None else preset
