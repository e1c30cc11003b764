"""Budget presets resolve to the numbers a study runs with."""

from __future__ import annotations

from tsdl.config import TsdlConfig
from tsdl.tune.budget import BUDGETS, plan_study


def test_smoke_budget_is_small_and_full_keeps_the_config() -> None:
    config = TsdlConfig()
    smoke = plan_study(config, "smoke")
    assert (smoke.stage1_trials, smoke.stage2_trials, smoke.max_epochs) == (6, 2, 4)
    assert smoke.max_params == 3  # stage1_trials // 2: low-priority params get frozen
    assert smoke.full_budget_epochs == 8 * 4
    full = plan_study(config, "full")
    assert (full.stage1_trials, full.stage2_trials) == (config.tune.stage1_trials, config.tune.stage2_trials)
    assert full.max_epochs == config.tune.asha.max_epochs
    assert full.grace_period == config.tune.asha.grace_period


def test_argument_beats_config_budget_and_user_limits_are_kept() -> None:
    config = TsdlConfig.model_validate(
        {"tune": {"budget": "small", "max_params": 1}, "training": {"limit_train_batches": 3}}
    )
    assert plan_study(config).budget == "small"
    assert plan_study(config, "smoke").budget == "smoke"
    plan = plan_study(config, "small")
    assert plan.max_params == 1
    assert plan.limit_train_batches == 3  # the stricter of preset and config
    assert plan.stage1_trials == BUDGETS["small"].stage1_trials
