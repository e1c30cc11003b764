"""The leakage audit: does a column copy or track the target, now or ahead of time?

Every covariate, and every numeric column of the file the config leaves out, is compared with
the target of its own series at each shift ``-max_shift..+max_shift`` (``x[t]`` against
``y[t + shift]``). The verdict is taken over all shifts at once, never at the first one over the
threshold: a smooth target is nearly equal to its own lags, so a copy of the target also "looks
like" a lag, and scanning from the most negative shift once passed exact copies as lags.

- Exact copies come first: a column equal to the target at a shift >= 0 in some series fails,
  whatever the correlations say; equal at a negative shift it is a lag.
- Correlations are of step-to-step changes (first differences within each series), per series:
  the level of a smooth or trending series correlates ~1 with anything smooth or trending, its
  changes do not. The worst (series, shift) is reported; on a tie a shift >= 0 wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Finding", "SeriesValues", "scan_column"]

_MIN_CORR_PAIRS = 20  # fewer pairs per series: a chance |corr| >= 0.99 is no longer negligible
_MIN_COPY_PAIRS = 3
_TIE = 1e-9


@dataclass(frozen=True)
class SeriesValues:
    """A column laid out as the target is: ``values[T]`` with ``sid[T]`` series indices (rows of
    one series contiguous and in time order) and ``names[N]`` the series ids."""

    values: np.ndarray
    sid: np.ndarray
    names: np.ndarray

    def changes(self) -> np.ndarray:
        """``v[t] - v[t-1]`` within each series; NaN at each series' first row and next to NaN/inf."""
        v = self.values
        out = np.full(len(v), np.nan)
        if len(v) > 1:
            with np.errstate(invalid="ignore", over="ignore"):
                d = v[1:] - v[:-1]
            same = self.sid[1:] == self.sid[:-1]
            out[1:] = np.where(same & np.isfinite(d), d, np.nan)
        return out


@dataclass(frozen=True)
class Finding:
    """The worst match of one column: ``x[t]`` ~ ``y[t + shift]`` with ``corr`` of the changes,
    ``exact`` when equal (to float tolerance) there, in ``series`` (``None``: in every series)."""

    shift: int
    corr: float
    exact: bool
    series: str | None


def scan_column(x: np.ndarray, target: SeriesValues, max_shift: int, threshold: float) -> Finding | None:
    """The worst (series, shift) at which ``x`` copies or tracks the target, over all shifts.

    The finding names its series unless every comparable series is at or over ``threshold``.
    Returns ``None`` when no pair of points could be compared at all.
    """
    column = SeriesValues(np.asarray(x, np.float64), target.sid, target.names)
    dx, dy = column.changes(), target.changes()
    n = len(target.names)
    best: Finding | None = None
    copy_at: Finding | None = None
    lag_copy: Finding | None = None
    # Non-negative shifts first, nearest first: they win ties and are where copies leak.
    for shift in [*range(0, max_shift + 1), *range(-1, -max_shift - 1, -1)]:
        exact = _equal_series(column, target, shift, n)
        if exact.any():
            hit = Finding(shift, _pooled_corr(dx, dy, target.sid, shift, exact), True, _where(exact, target))
            if shift >= 0 and copy_at is None:
                copy_at = hit
            elif shift < 0 and lag_copy is None:
                lag_copy = hit
        corr = _series_corr(dx, dy, target.sid, shift, n)
        if np.isfinite(corr).any():
            k = int(np.nanargmax(np.abs(corr)))
            if best is None or abs(corr[k]) > abs(best.corr) + _TIE:
                everywhere = bool((np.abs(corr[np.isfinite(corr)]) >= threshold).all())
                best = Finding(shift, float(corr[k]), False, None if everywhere else str(target.names[k]))
    if copy_at is not None:
        return copy_at
    if lag_copy is not None:
        return lag_copy
    return best


def _where(mask: np.ndarray, target: SeriesValues) -> str | None:
    """The first series of ``mask``, or None when it holds for every series."""
    return None if mask.all() else str(target.names[int(np.flatnonzero(mask)[0])])


def _pairs(x: np.ndarray, y: np.ndarray, sid: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x[t], y[t + shift], series)`` for the finite pairs whose two points lie in one series."""
    n = len(x)
    if abs(shift) >= n:
        return x[:0], y[:0], sid[:0]
    lo, hi = max(0, -shift), n - max(0, shift)
    xs, ys, s = x[lo:hi], y[lo + shift : hi + shift], sid[lo:hi]
    valid = (s == sid[lo + shift : hi + shift]) & np.isfinite(xs) & np.isfinite(ys)
    return xs[valid], ys[valid], s[valid]


def _equal_series(column: SeriesValues, target: SeriesValues, shift: int, n: int) -> np.ndarray:
    """``[N]``: series where ``x[t] == y[t + shift]`` wherever both exist (>= 3 pairs, not constant)."""
    xs, ys, s = _pairs(column.values, target.values, target.sid, shift)
    if len(xs) == 0:
        return np.zeros(n, bool)
    with np.errstate(invalid="ignore", over="ignore"):
        differs = ~np.isclose(xs, ys, rtol=1e-9, atol=1e-12)
    count = np.bincount(s, minlength=n)
    bad = np.bincount(s, weights=differs, minlength=n)
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, s, ys)
    np.maximum.at(hi, s, ys)
    return (count >= _MIN_COPY_PAIRS) & (bad == 0) & (hi > lo)


def _moments(xs: np.ndarray, ys: np.ndarray, s: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    count = np.bincount(s, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.bincount(s, weights=xs, minlength=n) / count
        my = np.bincount(s, weights=ys, minlength=n) / count
    cx, cy = xs - mx[s], ys - my[s]  # centred per series first: no cancellation on large levels
    sxx = np.bincount(s, weights=cx * cx, minlength=n)
    syy = np.bincount(s, weights=cy * cy, minlength=n)
    sxy = np.bincount(s, weights=cx * cy, minlength=n)
    return count, sxx, syy, sxy


def _series_corr(dx: np.ndarray, dy: np.ndarray, sid: np.ndarray, shift: int, n: int) -> np.ndarray:
    """``[N]`` Pearson correlation of ``dx[t]`` and ``dy[t + shift]`` per series (NaN if undefined)."""
    xs, ys, s = _pairs(dx, dy, sid, shift)
    if len(xs) == 0:
        return np.full(n, np.nan)
    xs, ys = _unit(xs), _unit(ys)
    count, sxx, syy, sxy = _moments(xs, ys, s, n)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        corr = sxy / np.sqrt(sxx * syy)
    return np.where((count >= _MIN_CORR_PAIRS) & (sxx > 0) & (syy > 0), corr, np.nan)


def _pooled_corr(dx: np.ndarray, dy: np.ndarray, sid: np.ndarray, shift: int, series: np.ndarray) -> float:
    """Correlation of the changes over the series in ``series`` (for a copy's message)."""
    xs, ys, s = _pairs(dx, dy, sid, shift)
    keep = series[s]
    xs, ys = _unit(xs[keep]), _unit(ys[keep])
    if len(xs) < 2:
        return float("nan")
    xs, ys = xs - xs.mean(), ys - ys.mean()
    with np.errstate(invalid="ignore", over="ignore"):
        denom = np.sqrt((xs * xs).sum() * (ys * ys).sum())
        return float((xs * ys).sum() / denom) if denom > 0 else float("nan")


def _unit(v: np.ndarray) -> np.ndarray:
    """``v`` divided by its largest magnitude, so squares cannot overflow (values near 1e308)."""
    top = np.max(np.abs(v)) if len(v) else 0.0
    return v / top if np.isfinite(top) and top > 0 else v
