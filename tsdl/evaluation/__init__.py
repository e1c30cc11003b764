"""Evaluation: forecast metrics and the seasonal-naive baseline (numpy only)."""

from tsdl.evaluation.metrics import (
    CRPS_LEVELS,
    LOWER_IS_BETTER,
    crps_from_quantiles,
    gaussian_metrics,
    interval_coverage,
    metrics_table,
    point_metrics,
    quantile_metrics,
    season_length_for,
    seasonal_naive,
)
from tsdl.evaluation.report import EvaluationReport, evaluate_point, insample_scale, resolve_season

__all__ = [
    "CRPS_LEVELS",
    "EvaluationReport",
    "crps_from_quantiles",
    "interval_coverage",
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
