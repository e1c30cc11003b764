"""Evaluation: forecast metrics and the seasonal-naive baseline (numpy only)."""

from tsdl.evaluation.metrics import (
    LOWER_IS_BETTER,
    gaussian_metrics,
    metrics_table,
    point_metrics,
    quantile_metrics,
    season_length_for,
    seasonal_naive,
)
from tsdl.evaluation.report import EvaluationReport, evaluate_point, insample_scale, resolve_season

__all__ = [
    "EvaluationReport",
    "LOWER_IS_BETTER",
    "evaluate_point",
    "insample_scale",
    "resolve_season",
    "gaussian_metrics",
    "metrics_table",
    "point_metrics",
    "quantile_metrics",
    "season_length_for",
    "seasonal_naive",
]
