"""The season length of a sampling frequency: the one definition behind the seasonal-naive
baseline, MASE and the doctor's reference forecast.

A season is the number of steps in the natural cycle of the data: a day of sub-daily steps, a
week of days, a year of weeks, months or quarters. A multiple step has a season only when it
divides that cycle evenly ('2h' -> 12, '2MS' -> 6, '2W' -> 26); otherwise the cycle does not line
up with the steps ('7h', '2D', '5ME') and the baseline repeats the last value (season 1).
"""

from __future__ import annotations

import pandas as pd

from tsdl.errors import DataError

__all__ = ["season_length"]

_LEGACY_ALIASES = {
    "M": "ME",
    "Q": "QE",
    "Y": "YE",
    "A": "YE",
    "BM": "BME",
    "BQ": "BQE",
    "H": "h",
    "T": "min",
}
"""Aliases pandas 3 rejects but users (and older data) still write."""

_STEPS_PER_CYCLE = {
    "B": 5,  # business days per week
    "C": 5,
    "W": 52,  # weeks per year
    "SME": 24,  # semi-months per year
    "SMS": 24,
    "ME": 12,
    "MS": 12,
    "BME": 12,
    "BMS": 12,
    "QE": 4,
    "QS": 4,
    "BQE": 4,
    "BQS": 4,
}
_DAY = pd.Timedelta(days=1)


def season_length(freq: str) -> int:
    """Steps per natural cycle of ``freq`` (a pandas alias such as 'h', '15min', 'W-SUN', 'QE-DEC').

    Raises:
        DataError: ``freq`` is not a pandas frequency.
    """
    try:
        offset = pd.tseries.frequencies.to_offset(_LEGACY_ALIASES.get(freq, freq))
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"frequency {freq!r} is not a pandas frequency alias",
            hint="set data.freq to e.g. 'h', '15min', 'D', 'W' or 'MS', or set data.seasonality",
        ) from exc
    n = int(offset.n)
    if isinstance(offset, pd.offsets.Tick):
        step = pd.Timedelta(offset)
        if step < _DAY:
            return int(_DAY // step) if _DAY % step == pd.Timedelta(0) else 1
        return {1: 7, 7: 52}.get(int(step / _DAY), 1) if step % _DAY == pd.Timedelta(0) else 1
    code = offset.rule_code.split("-")[0]
    if code == "D":  # calendar day (not a Tick in pandas 3)
        return {1: 7, 7: 52}.get(n, 1)
    cycle = _STEPS_PER_CYCLE.get(code, 1)
    return cycle // n if cycle % n == 0 else 1
