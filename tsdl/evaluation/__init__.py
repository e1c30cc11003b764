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

__all__ = [
    "LOWER_IS_BETTER",
    "gaussian_metrics",
    "metrics_table",
    "point_metrics",
    "quantile_metrics",
    "season_length_for",
    "seasonal_naive",
]
