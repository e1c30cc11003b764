"""Forecast accuracy metrics and the seasonal-naive baseline every test table is compared against.

Plain numpy in, plain floats out: the same functions score a torch model, a baseline or a
forecast read back from disk, on the normalized or the original scale.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from tsdl.errors import ConfigError, DataError, TrainingError

__all__ = [
    "CRPS_LEVELS",
    "LOWER_IS_BETTER",
    "crps_from_quantiles",
    "gaussian_metrics",
    "interval_coverage",
    "metrics_table",
    "point_metrics",
    "quantile_metrics",
    "seasonal_naive",
]

LOWER_IS_BETTER = frozenset({"MAE", "MSE", "RMSE", "sMAPE", "MASE", "pinball", "CRPS", "NLL"})
"""Metrics for which a skill score (1 - model / baseline) is meaningful."""

CRPS_LEVELS: tuple[float, ...] = tuple((k + 0.5) / 99 for k in range(99))
"""Quantile levels at which a forecast distribution is read to integrate its CRPS: the midpoints
of 99 equal bins of (0, 1). For a Gaussian this is within 1e-4 (relative) of the closed form."""

_Z_80 = 1.2815515655446004  # standard-normal quantile 0.9: the 80% central interval is +-_Z_80
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def point_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, *, insample_scale: np.ndarray | None
) -> dict[str, float]:
    """Scale-dependent and scale-free point errors of a batch of forecast windows.

    Args:
        y_true: ``[N, H]`` observed values.
        y_pred: ``[N, H]`` point forecasts.
        insample_scale: ``[N]`` mean absolute seasonal difference of each window's series over
            its train segment (the MASE denominator, ``evaluation.baseline.train_scale``); None
            leaves MASE out. Windows whose scale
            is 0 (a constant train segment) are excluded from MASE with a warning.

    Returns:
        ``MAE``, ``MSE``, ``RMSE``, ``sMAPE`` (percent, 0..200; 0/0 counts as a perfect 0) and,
        with a scale, ``MASE`` (mean over windows of MAE_i / scale_i).
    """
    y_true, y_pred = _check_pair(y_true, y_pred, "y_pred")
    err = y_pred - y_true
    abs_err = np.abs(err)
    denom = np.abs(y_true) + np.abs(y_pred)
    ratio = np.divide(abs_err, denom, out=np.zeros_like(abs_err), where=denom > 0)
    mse = float(np.mean(err**2))
    out = {
        "MAE": float(np.mean(abs_err)),
        "MSE": mse,
        "RMSE": math.sqrt(mse),
        "sMAPE": float(200.0 * np.mean(ratio)),
    }
    if insample_scale is not None:
        out["MASE"] = _mase(abs_err, np.asarray(insample_scale, dtype=np.float64))
    return out


def quantile_metrics(
    y_true: np.ndarray, q_pred: np.ndarray, levels: Sequence[float]
) -> dict[str, float]:
    """Scores of a quantile forecast: pinball loss, approximate CRPS, interval coverage and width.

    Args:
        y_true: ``[N, H]`` observed values.
        q_pred: ``[N, H, Q]`` forecast quantiles, one slice per entry of ``levels``.
        levels: ``Q`` quantile levels in (0, 1), e.g. ``[0.1, 0.5, 0.9]``.

    Returns:
        ``pinball`` (mean over levels), ``CRPS`` (2 x mean pinball, the quantile approximation),
        ``coverage`` (share of values inside the outermost interval [min level, max level]) and
        ``interval_width`` (mean width of that interval).
    """
    y_true, q_pred, lv = _quantile_inputs(y_true, q_pred, levels, "q_pred", increasing=False)
    _check_pair(y_true, q_pred[..., 0], "q_pred")
    _check_finite(q_pred, "q_pred")
    pinball = float(np.mean(_pinball(y_true, q_pred, lv)))
    lo, hi = q_pred[..., int(np.argmin(lv))], q_pred[..., int(np.argmax(lv))]
    return {
        "pinball": pinball,
        "CRPS": 2.0 * pinball,
        "coverage": float(np.mean((y_true >= lo) & (y_true <= hi))),
        "interval_width": float(np.mean(hi - lo)),
    }


def gaussian_metrics(y_true: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """Scores of a Gaussian forecast N(mean, std^2) per point.

    Args:
        y_true: ``[N, H]`` observed values.
        mean: ``[N, H]`` forecast means.
        std: ``[N, H]`` forecast standard deviations (> 0).

    Returns:
        ``CRPS`` (closed form, Gneiting & Raftery 2007), ``NLL`` (mean negative log-likelihood)
        and ``coverage_80`` (share of values inside the central 80% interval).
    """
    y_true, mean = _check_pair(y_true, mean, "mean")
    _, std = _check_pair(y_true, std, "std")
    if np.any(std <= 0.0):
        raise TrainingError(
            f"forecast std must be > 0 everywhere, got min {float(np.min(std))!r}",
            hint="bound the distribution head's scale (e.g. softplus + a small floor)",
        )
    z = (y_true - mean) / std
    pdf = np.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    crps = std * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - _INV_SQRT_PI)
    nll = 0.5 * np.log(2.0 * math.pi * std**2) + 0.5 * z**2
    return {
        "CRPS": float(np.mean(crps)),
        "NLL": float(np.mean(nll)),
        "coverage_80": float(np.mean(np.abs(z) <= _Z_80)),
    }


def crps_from_quantiles(
    y_true: np.ndarray, q_grid: np.ndarray, levels: Sequence[float] = CRPS_LEVELS
) -> np.ndarray:
    """Pointwise CRPS of any forecast distribution, from its quantiles on a grid of levels.

    Uses ``CRPS(F, y) = 2 * integral_0^1 pinball_tau(y, F^-1(tau)) dtau`` (Gneiting & Raftery,
    2007; Laio & Tamea, 2007), integrated with the midpoint rule: level ``i`` weighs the width
    between the midpoints to its neighbours (the first from 0, the last to 1). With the default
    ``CRPS_LEVELS`` the weights are all ``1/99``. It holds for every head (Gaussian, quantile,
    counts), so one number compares them; a point forecast is the limit where CRPS equals the
    absolute error.

    Args:
        y_true: ``[N, H]`` observed values.
        q_grid: ``[N, H, Q]`` forecast quantiles at ``levels``.
        levels: ``Q`` increasing levels in (0, 1).

    Returns:
        ``[N, H]`` CRPS of every forecast point (average it for the metric).
    """
    y_true, q_grid, lv = _quantile_inputs(y_true, q_grid, levels, "q_grid", increasing=True)
    _check_finite(q_grid, "q_grid")
    edges = np.concatenate([[0.0], (lv[1:] + lv[:-1]) / 2.0, [1.0]])
    weights = np.diff(edges)
    return 2.0 * np.sum(_pinball(y_true, q_grid, lv) * weights, axis=-1)


def interval_coverage(y_true: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of observed values inside ``[lower, upper]`` (the ends count as inside).

    For a calibrated 80% interval (quantiles 0.1 and 0.9) this is about 0.8; far below means
    overconfident intervals, far above means too wide ones.
    """
    y_true, lower = _check_pair(y_true, lower, "lower")
    _, upper = _check_pair(y_true, upper, "upper")
    return float(np.mean((y_true >= lower) & (y_true <= upper)))


def seasonal_naive(past_target: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Repeat the last observed season: the baseline a model has to beat to be worth training.

    Args:
        past_target: ``[N, L]`` lookback values of the target.
        horizon: ``H`` steps to forecast.
        season: season length in steps (1 gives the naive last-value forecast).

    Returns:
        ``[N, H]`` with ``out[:, h] = past_target[:, L - season + h % season]``.
    """
    past = np.asarray(past_target)
    if past.ndim != 2:
        raise ValueError(f"past_target must be [N, L], but got shape {past.shape}")
    if horizon < 1 or season < 1:
        raise ValueError(f"horizon and season must be >= 1, but got {horizon} and {season}")
    length = past.shape[1]
    if season > length:
        raise ConfigError(
            f"seasonal-naive baseline needs a lookback of at least one season: season length "
            f"{season} > data.input_chunk_length {length}",
            hint=f"set data.input_chunk_length >= {season} or data.seasonality <= {length}",
        )
    idx = length - season + np.arange(horizon) % season
    return past[:, idx]


def metrics_table(model: Mapping[str, float], baseline: Mapping[str, float], *, title: str) -> str:
    """An aligned text table of model vs seasonal-naive metrics with a skill column.

    Skill is ``1 - model / baseline`` for error metrics (> 0: the model beats the baseline);
    it is ``-`` where the metric has no baseline, is not an error, or the baseline is 0.
    """
    rows = [("metric", "model", "seasonal-naive", "skill")]
    for name, value in model.items():
        base = baseline.get(name)
        rows.append((name, _fmt(value), _fmt(base), _fmt(_skill(name, value, base))))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [title]
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _skill(name: str, value: float, base: float | None) -> float | None:
    if name not in LOWER_IS_BETTER or base is None or base == 0.0 or not math.isfinite(base):
        return None
    return 1.0 - value / base


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.4e}"


def _mase(abs_err: np.ndarray, scale: np.ndarray) -> float:
    if scale.shape != abs_err.shape[:1]:
        raise ValueError(
            f"insample_scale must be [N] = [{abs_err.shape[0]}], but got {scale.shape}"
        )
    _check_finite(scale, "insample_scale", DataError)
    usable = scale > 0.0
    n_bad = int(np.sum(~usable))
    if n_bad:
        warnings.warn(
            f"MASE: {n_bad} of {scale.size} windows have a constant train segment (scale 0) "
            f"and are left out of MASE",
            RuntimeWarning,
            stacklevel=3,
        )
    if not np.any(usable):
        return math.nan
    return float(np.mean(abs_err[usable].mean(axis=1) / scale[usable]))


def _quantile_inputs(
    y_true: np.ndarray, q: np.ndarray, levels: Sequence[float], name: str, *, increasing: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shapes and levels of a quantile forecast, checked the same way for every score of one.

    Args:
        y_true: ``[N, H]`` observed values.
        q: ``[N, H, Q]`` forecast quantiles, one slice per level.
        levels: ``Q`` levels, each strictly inside (0, 1).
        name: what ``q`` is called in the error.
        increasing: also require strictly increasing levels (an integral over them needs it).

    Returns:
        ``y_true``, ``q`` and the levels as float64 arrays.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    lv = np.asarray(levels, dtype=np.float64)
    if q.ndim != 3 or q.shape[:2] != y_true.shape or q.shape[2] != lv.size:
        raise ValueError(
            f"{name} must be [N, H, Q] with [N, H] = {y_true.shape} and Q = {lv.size} levels, "
            f"but got {q.shape}"
        )
    inside = lv.size > 0 and not np.any((lv <= 0.0) | (lv >= 1.0))
    if not inside or (increasing and np.any(np.diff(lv) <= 0.0)):
        order = " and increase strictly" if increasing else ""
        raise ValueError(
            f"quantile levels must lie strictly between 0 and 1{order}, but got {list(levels)}"
        )
    return y_true, q, lv


def _pinball(y_true: np.ndarray, q: np.ndarray, lv: np.ndarray) -> np.ndarray:
    """``[N, H, Q]`` pinball loss of each quantile: ``max(tau * d, (tau - 1) * d)``, ``d = y - q``."""
    diff = y_true[..., None] - q
    return np.maximum(lv * diff, (lv - 1.0) * diff)


def _check_pair(y_true: np.ndarray, other: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if y_true.ndim != 2 or other.shape != y_true.shape:
        raise ValueError(
            f"y_true and {name} must both be [N, H], but got {y_true.shape} and {other.shape}"
        )
    if y_true.size == 0:
        raise DataError(
            "no test windows to score (y_true is empty)",
            hint="lengthen the test split or shorten data.input_chunk_length",
        )
    _check_finite(y_true, "y_true", DataError)
    _check_finite(other, name)
    return y_true, other


def _check_finite(
    values: np.ndarray, name: str, error: type[DataError | TrainingError] = TrainingError
) -> None:
    """No silent NaN: a non-finite input is an error naming the array and the first bad index."""
    bad = ~np.isfinite(values)
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise error(
            f"{name} has {int(bad.sum())} non-finite values (first at index {first})",
            hint="check the data, the model output and the inverse scaling",
        )


def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorized error function without a scipy dependency."""
    return np.vectorize(math.erf, otypes=[np.float64])(x)
