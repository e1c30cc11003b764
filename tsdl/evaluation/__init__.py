"""Evaluation: forecast metrics and the seasonal-naive baseline (numpy only)."""

from tsdl.evaluation.baseline import MetricUnavailable, history_naive, train_scale
from tsdl.evaluation.metrics import (
    CRPS_LEVELS,
    LOWER_IS_BETTER,
    crps_from_quantiles,
    gaussian_metrics,
    interval_coverage,
    metrics_table,
    point_metrics,
    quantile_metrics,
    seasonal_naive,
)

__all__ = [
    "CRPS_LEVELS",
    "crps_from_quantiles",
    "interval_coverage",
    "LOWER_IS_BETTER",
    "MetricUnavailable",
    "gaussian_metrics",
    "history_naive",
    "metrics_table",
    "point_metrics",
    "quantile_metrics",
    "seasonal_naive",
    "train_scale",
]
