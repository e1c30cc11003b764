"""Known-future calendar features from timestamps, each encoded in ``[-0.5, 0.5]``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tsdl.errors import DataError

__all__ = ["calendar_features", "calendar_names"]

# feature -> (accessor, max value): encoded as value / max - 0.5, the bounded range that
# neither dominates scaled inputs nor needs fitting.
_SPEC = {
    "minute": (lambda i: i.minute, 59),
    "hour": (lambda i: i.hour, 23),
    "dayofweek": (lambda i: i.dayofweek, 6),
    "day": (lambda i: i.day - 1, 30),
    "dayofyear": (lambda i: i.dayofyear - 1, 365),
    "weekofyear": (lambda i: i.isocalendar().week.to_numpy() - 1, 52),
    "month": (lambda i: i.month - 1, 11),
}


def calendar_names(features: Sequence[str], holidays_country: str | None) -> list[str]:
    """Column names of the generated features, in the order :func:`calendar_features` returns."""
    return [f"cal_{f}" for f in features] + (["holiday"] if holidays_country else [])


def calendar_features(
    times_ns: np.ndarray, features: Sequence[str], holidays_country: str | None
) -> np.ndarray:
    """``[T, F_cal]`` float32 features for ``[T]`` int64 nanosecond timestamps."""
    index = pd.DatetimeIndex(np.asarray(times_ns, np.int64).view("datetime64[ns]"))
    columns = [np.asarray(_SPEC[f][0](index), np.float64) / _SPEC[f][1] - 0.5 for f in features]
    if holidays_country:
        columns.append(_holiday_flag(index, holidays_country) - 0.5)
    if not columns:
        return np.zeros((len(index), 0), np.float32)
    return np.stack(columns, axis=1).astype(np.float32)


def _holiday_flag(index: pd.DatetimeIndex, country: str) -> np.ndarray:
    try:
        import holidays
    except ImportError:  # pragma: no cover - holidays is a dependency
        raise DataError(
            "data.covariates.holidays_country needs the 'holidays' package", hint="pip install holidays"
        ) from None
    years = sorted(set(index.year.tolist()))
    try:
        calendar = holidays.country_holidays(country, years=years)
    except (KeyError, NotImplementedError):
        raise DataError(
            f"data.covariates.holidays_country: unknown country code {country!r}",
            hint="use an ISO 3166 code such as 'US', 'DE' or 'FR'",
        ) from None
    dates = np.array(sorted(calendar.keys()), dtype="datetime64[D]")
    return np.isin(index.values.astype("datetime64[D]"), dates).astype(np.float64)
