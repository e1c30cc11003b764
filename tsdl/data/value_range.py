"""Every value must survive the per-series scaling and the cast to float32, the training dtype.

A value near the float64 limit (1e308) used to pass the checklist: the standard scaler's spread
overflowed, fell back to 1.0, and the float32 cast turned the value into inf, which trained as a
NaN loss. The same happens to a finite scaled value beyond float32's 3.4e38 (``scaler: none``,
or a val/test value far outside the train range). A spread or center that float32 cannot hold
breaks the inverse transform of forecasts made in the model's dtype (inf, or a spread below
float32's smallest normal that rounds to 0 and flattens every forecast to the center).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["F32_MAX", "Unscalable", "describe", "find_unscalable"]

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)
_HUGE_FIX = "remove placeholder values such as 1e308, or rescale the column (other units) before training"
_TINY_FIX = "rescale the column to other units (e.g. multiply it by 1e30) before training"


@dataclass(frozen=True)
class Unscalable:
    """The first value that cannot be scaled into float32: flat ``row``, column ``col``, why."""

    row: int
    col: int
    value: float
    why: str
    count: int
    fix: str


def find_unscalable(values: np.ndarray, scaled: np.ndarray, center: np.ndarray, scale: np.ndarray, kind: str) -> Unscalable | None:
    """The first bad value of ``values`` ``[T, C]`` (NaN/inf are the missing-values check's).

    Args:
        scaled: ``[T, C]`` scaled values, float64.
        center / scale: ``[T, C]`` the scaler statistics applied to each value.
    """
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        bad_stats = ~(np.isfinite(scale) & (np.abs(scale) <= F32_MAX) & (np.abs(center) <= F32_MAX))
        tiny = np.abs(scale) < F32_TINY
        bad_scaled = ~(np.abs(scaled) <= F32_MAX)
    for mask, reason in ((bad_stats, "spread"), (tiny, "tiny"), (bad_scaled, "scaled")):
        mask = mask & finite
        if not mask.any():
            continue
        if reason == "scaled":
            row, col = np.unravel_index(int(np.flatnonzero(mask.ravel())[0]), mask.shape)
        else:  # point at the value that drives the statistic: the largest magnitude it covers
            col = int(np.flatnonzero(mask.any(axis=0))[0])
            rows = np.flatnonzero(mask[:, col])
            row = int(rows[np.argmax(np.abs(values[rows, col]))] if reason == "spread" else rows[0])
        row, col = int(row), int(col)
        if reason == "spread":
            why = (f"gives the {kind} scaler a spread of {scale[row, col]:.3g} and center {center[row, col]:.3g}, "
                   "beyond float32's 3.4e+38 (the training dtype)")
        elif reason == "tiny":
            why = (f"gives the {kind} scaler a spread of {scale[row, col]:.3g}, below float32's smallest "
                   "normal 1.2e-38 (forecasts would collapse to the center)")
        else:
            why = f"scales to {scaled[row, col]:.3g} ({kind} scaler), beyond float32's 3.4e+38 (the training dtype)"
        fix = _TINY_FIX if reason == "tiny" else _HUGE_FIX
        return Unscalable(row, col, float(values[row, col]), why, int(mask.sum()), fix)
    return None


def describe(bad: Unscalable, *, series: str, time_ns: int, column: str) -> str:
    """``column 'y' in series 's0' at 2024-01-01 05:00:00: value 1e+308 ...``."""
    more = f" ({bad.count} values affected)" if bad.count > 1 else ""
    return f"column '{column}' in series '{series}' at {pd.Timestamp(int(time_ns))}: value {bad.value:.6g} {bad.why}{more}"
