"""Hyperparameter tuning: staged ASHA + Optuna TPE studies whose trials are Ray Train runs."""

from tsdl.tune.budget import BUDGETS, Budget, StudyPlan, plan_study
from tsdl.tune.results import AshaStats, StudyResult, TrialRecord, leaderboard, render_leaderboard
from tsdl.tune.space import ActiveSpace, apply_params, narrow_space, reference_point, select_space
from tsdl.tune.study import run_study

__all__ = [
    "BUDGETS",
    "ActiveSpace",
    "AshaStats",
    "Budget",
    "StudyPlan",
    "StudyResult",
    "TrialRecord",
    "apply_params",
    "leaderboard",
    "narrow_space",
    "plan_study",
    "reference_point",
    "render_leaderboard",
    "run_study",
    "select_space",
]
