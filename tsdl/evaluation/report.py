"""Score a model next to the seasonal-naive baseline: the numbers and the table of every test run.

A metric alone says little ("MAE 0.31"); the same metric for "repeat the last season" on the
same windows says whether the model learned anything. ``evaluate_point`` computes both and
the skill ``1 - model / baseline`` per error metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsdl.evaluation.metrics import (
    LOWER_IS_BETTER,
    metrics_table,
    point_metrics,
    season_length_for,
    seasonal_naive,
)

__all__ = ["EvaluationReport", "evaluate_point", "insample_scale", "resolve_season"]


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Model and baseline metrics on one scale, with skill and the printable table."""

    model: dict[str, float]
    baseline: dict[str, float]
    skill: dict[str, float]
    season: int
    table: str

    def flat(self) -> dict[str, float]:
        """``MAE``, ``naive_MAE``, ``skill_MAE``...: one dict for ``MlflowRun.log_test_metrics``."""
        out = dict(self.model)
        out.update({f"naive_{k}": v for k, v in self.baseline.items()})
        out.update({f"skill_{k}": v for k, v in self.skill.items()})
        return out


def resolve_season(seasonality: int | None, freq: str | None) -> int:
    """The configured ``data.seasonality``, else the season of the inferred frequency, else 1."""
    if seasonality is not None:
        return seasonality
    return season_length_for(freq) if freq else 1


def insample_scale(train_target: np.ndarray, season: int) -> np.ndarray:
    """The MASE denominator: mean absolute seasonal difference of each series' train segment.

    Args:
        train_target: ``[N, T]`` train-segment values, one row per window's series (``T > season``).
        season: season length in steps.

    Returns:
        ``[N]`` scales (0 for a series that is constant at lag ``season``).
    """
    train = np.asarray(train_target, dtype=np.float64)
    if train.ndim != 2 or train.shape[1] <= season:
        raise ValueError(
            f"train_target must be [N, T] with T > season ({season}), but got shape {train.shape}"
        )
    return np.mean(np.abs(train[:, season:] - train[:, :-season]), axis=1)


def evaluate_point(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    past_target: np.ndarray,
    *,
    season: int,
    insample_scale: np.ndarray | None,
    title: str,
) -> EvaluationReport:
    """Point metrics of the model and of the seasonal-naive forecast on the same windows.

    Args:
        y_true: ``[N, H]`` observed values.
        y_pred: ``[N, H]`` model forecasts (same scale as ``y_true``).
        past_target: ``[N, L]`` lookback of each window, for the baseline.
        season: season length of the baseline (``resolve_season``).
        insample_scale: ``[N]`` MASE denominators on the same scale, or None to skip MASE.
        title: first line of the table, e.g. ``"test (original scale)"``.

    Returns:
        The report; ``report.table`` is ready to print and to log as a text artifact.
    """
    naive = seasonal_naive(past_target, np.asarray(y_true).shape[1], season)
    model = point_metrics(y_true, y_pred, insample_scale=insample_scale)
    baseline = point_metrics(y_true, naive, insample_scale=insample_scale)
    skill = {
        k: 1.0 - model[k] / baseline[k]
        for k in model
        if k in LOWER_IS_BETTER and k in baseline and baseline[k] > 0.0
    }
    table = metrics_table(model, baseline, title=f"{title}, seasonal-naive season={season}")
    return EvaluationReport(model=model, baseline=baseline, skill=skill, season=season, table=table)
