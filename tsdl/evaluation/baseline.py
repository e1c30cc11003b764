"""The seasonal-naive baseline and the MASE scale from each series' observed history.

Both follow the M4 definitions (Hyndman & Koehler 2006): the baseline repeats the last season
observed before the forecast origin, and the MASE denominator is the mean absolute seasonal
difference of the series' *training* history. Neither depends on the window's lookback, so any
``input_chunk_length`` works. When a series is too short for either, the metric cannot be
computed: :class:`MetricUnavailable` says why, and the caller reports the metric as missing.
"""

from __future__ import annotations

import numpy as np

from tsdl.errors import DataError

__all__ = ["MetricUnavailable", "history_naive", "train_scale"]


class MetricUnavailable(DataError):
    """A metric that the data cannot support (e.g. less than one season of history)."""


def history_naive(
    target: np.ndarray,
    series_start: np.ndarray,
    origin: np.ndarray,
    horizon: int,
    season: int,
    ids: np.ndarray,
) -> np.ndarray:
    """``[N, H]`` seasonal-naive forecasts: ``target[origin - season + h % season]`` per window.

    Args:
        target: ``[T]`` flat target of all series.
        series_start / origin: ``[N]`` flat rows where each window's series begins and where its
            forecast begins.
        ids: ``[N]`` series ids, for the message when a series has less than one season.
    """
    if season < 1 or horizon < 1:
        raise ValueError(f"horizon and season must be >= 1, but got {horizon} and {season}")
    observed = np.asarray(origin) - np.asarray(series_start)
    short = observed < season
    if short.any():
        i = int(np.argmax(short))
        raise MetricUnavailable(
            f"seasonal-naive baseline: series '{ids[i]}' has {int(observed[i])} observed steps before "
            f"a test forecast, fewer than one season ({season})",
            hint="set data.seasonality to a shorter season, or use longer series",
        )
    rows = (np.asarray(origin) - season)[:, None] + np.arange(horizon) % season
    return np.asarray(target, dtype=np.float64)[rows]


def train_scale(
    target: np.ndarray,
    series_start: np.ndarray,
    train_end: np.ndarray,
    season: int,
    ids: np.ndarray,
) -> np.ndarray:
    """``[N]`` MASE denominators: mean ``|y_t - y_{t-season}|`` over each window's train segment.

    A series that is constant at lag ``season`` gets 0 (``point_metrics`` leaves it out of MASE).
    """
    start, end = np.asarray(series_start, np.int64), np.asarray(train_end, np.int64)
    n_train = end - start
    short = n_train <= season
    if short.any():
        i = int(np.argmax(short))
        raise MetricUnavailable(
            f"MASE: series '{ids[i]}' has {int(n_train[i])} training steps, MASE needs more than one "
            f"season ({season})",
            hint="set data.seasonality to a shorter season, or give the train split more rows",
        )
    values = np.asarray(target, dtype=np.float64)
    pairs, inverse = np.unique(np.stack([start, end], axis=1), axis=0, return_inverse=True)
    scales = np.array(
        [np.mean(np.abs(values[a + season : b] - values[a : b - season])) for a, b in pairs]
    )
    if scales.size and not np.any(scales > 0.0):
        raise MetricUnavailable(
            f"MASE: every series is constant at lag {season} over its train segment (scale 0)",
            hint="set data.seasonality to the series' real season",
        )
    return scales[np.asarray(inverse).reshape(-1)]
