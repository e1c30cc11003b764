"""Forecasting with a trained checkpoint: point and quantile forecasts, test metrics, baseline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tsdl.config import TsdlConfig
from tsdl.data import WindowSet
from tsdl.data.history import WindowHistory
from tsdl.errors import TrainingError
from tsdl.evaluation.baseline import MetricUnavailable, history_naive, train_scale
from tsdl.evaluation.metrics import (
    CRPS_LEVELS,
    crps_from_quantiles,
    interval_coverage,
    metrics_table,
    point_metrics,
    quantile_metrics,
)
from tsdl.losses import BaseLoss, build_loss
from tsdl.models import BaseForecaster, build_model
from tsdl.train.checkpointing import BestWeights, checkpoint_config, load_best

__all__ = ["Evaluation", "Forecast", "evaluate_windows", "forecast", "load_forecaster"]

EVAL_QUANTILES = (0.1, 0.5, 0.9)
"""Levels of the stored forecast quantiles: the median and the central 80% interval."""
_CRPS_CHUNK = 64
"""Windows whose 99-level quantile grid is built at once (bounds memory, e.g. for ZINB's search)."""


@dataclass
class Forecast:
    """Forecasts for N windows on the model (scaled) axis.

    Attributes:
        point: ``[N, H]`` mean/median forecast.
        quantiles: ``[N, H, Q]`` at `levels`, or None for point losses.
        levels: the quantile levels of `quantiles`.
        crps: ``[N, H]`` CRPS of every forecast point against the window's target (the
            distribution read on the ``CRPS_LEVELS`` grid), or None for point losses.
    """

    point: np.ndarray
    quantiles: np.ndarray | None
    levels: tuple[float, ...]
    crps: np.ndarray | None = None


@dataclass
class Evaluation:
    """Metrics of the model and the seasonal-naive baseline on both scales.

    ``missing`` names each metric the data could not support (``"MASE"``, ``"seasonal-naive"``)
    with the reason; such a metric is absent from the dicts, never NaN.
    """

    model: dict[str, float]
    baseline: dict[str, float]
    model_original: dict[str, float]
    baseline_original: dict[str, float]
    n_windows: int
    season_length: int
    examples: list[dict] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)

    def tables(self) -> str:
        """Both metric tables (normalized, original scale) and a line per missing metric."""
        season = f"seasonal-naive season={self.season_length}"
        parts = [
            metrics_table(self.model, self.baseline, title=f"test (normalized), {self.n_windows} windows, {season}"),
            "",
            metrics_table(self.model_original, self.baseline_original, title="test (original scale)"),
        ]
        parts += [f"{name}: not computed: {reason}" for name, reason in self.missing.items()]
        return "\n".join(parts)

    def flat(self) -> dict[str, float]:
        """Metric name -> value for tracking, e.g. ``mse``, ``mse_original``, ``naive_mse``."""
        out: dict[str, float] = {}
        for prefix, suffix, metrics in (
            ("", "", self.model),
            ("", "_original", self.model_original),
            ("naive_", "", self.baseline),
            ("naive_", "_original", self.baseline_original),
        ):
            out |= {f"{prefix}{k}{suffix}": v for k, v in metrics.items()}
        return out


def load_forecaster(checkpoint_dir: str | Path) -> tuple[BaseForecaster, BaseLoss, TsdlConfig, BestWeights]:
    """Rebuild the best model of a run from its checkpoint directory (holding ``best.pt``)."""
    best = load_best(Path(checkpoint_dir))
    config = checkpoint_config(best, Path(checkpoint_dir))
    loss = build_loss(config.loss)
    model = build_model(config.model, **best.dims, loss=loss)
    model.load_state_dict(best.model)
    model.eval()
    return model, loss, config, best


@torch.no_grad()
def forecast(
    model: BaseForecaster,
    loss: BaseLoss,
    windows: WindowSet,
    *,
    batch_size: int = 1024,
    levels: tuple[float, ...] = EVAL_QUANTILES,
) -> Forecast:
    """Run the model over every window, in order; probabilistic heads also get their CRPS."""
    model.eval()
    points, quantiles, crps = [], [], []
    for batch in windows.batches(batch_size, shuffle=False, seed=0):
        pred = model(batch.past, batch.future, batch.static).float()
        points.append(loss.point(pred).numpy())
        q = loss.quantiles(pred, levels)
        if q is not None:
            quantiles.append(q.numpy())
            crps.append(_crps(loss, pred, batch.target.numpy()))
    point = np.concatenate(points) if points else np.zeros((0, 0), dtype=np.float32)
    return Forecast(
        point=point,
        quantiles=np.concatenate(quantiles) if quantiles else None,
        levels=levels,
        crps=np.concatenate(crps) if crps else None,
    )


def _crps(loss: BaseLoss, pred: torch.Tensor, target: np.ndarray) -> np.ndarray:
    """``[B, H]`` CRPS of the head's distribution, read on the 99-level grid chunk by chunk."""
    out = []
    for start in range(0, pred.shape[0], _CRPS_CHUNK):
        grid = loss.quantiles(pred[start : start + _CRPS_CHUNK], CRPS_LEVELS)
        out.append(crps_from_quantiles(target[start : start + _CRPS_CHUNK], grid.numpy()))
    return np.concatenate(out)


def evaluate_windows(
    model: BaseForecaster,
    loss: BaseLoss,
    windows: WindowSet,
    *,
    inverse: Callable[[np.ndarray, np.ndarray], np.ndarray],
    history: WindowHistory,
    season_length: int,
    n_examples: int = 4,
) -> Evaluation:
    """Test metrics for the model and the seasonal-naive baseline, scaled and original.

    Probabilistic heads add ``pinball`` (mean over 0.1/0.5/0.9), ``CRPS`` (99-level grid, see
    ``crps_from_quantiles``), ``coverage_80`` (share of targets inside ``[q0.1, q0.9]``; 0.8 when
    calibrated) and ``width_80`` (that interval's mean width); the baseline's ``CRPS`` is its MAE,
    the CRPS of a point forecast, so the table shows the skill of the distribution too.

    The baseline and the MASE scale come from each series' history (``history``), not from the
    window's lookback, so they work for any ``input_chunk_length`` (M4 definitions).

    Args:
        inverse: ``inverse(values [N, H, ...], series_ids [N]) -> values`` undoing the scaler
            (affine per series, as every ``data.scaler``; CRPS scales with its slope).
        history: the windows' series history (``PreparedData.history``), in window order.
        season_length: season of the naive baseline and of the MASE scale.
    """
    fc = forecast(model, loss, windows)
    everything = windows.batch_at(np.arange(len(windows)))
    y_true = everything.target.numpy()
    past = everything.past[:, :, 0].numpy()
    ids = np.asarray(windows.series_ids)
    q_orig = None if fc.quantiles is None else inverse(fc.quantiles, ids)
    crps_orig = None if fc.crps is None else fc.crps * _slope(inverse, ids)
    y_orig, point_orig = inverse(y_true, ids), inverse(fc.point, ids)
    missing: dict[str, str] = {}
    results: dict[str, tuple[dict, dict]] = {}
    for unit, truth, point, q, crps in (
        ("scaled", y_true, fc.point, fc.quantiles, fc.crps),
        ("original", y_orig, point_orig, q_orig, crps_orig),
    ):
        naive, scale = _from_history(history, unit, y_true.shape[1], season_length, missing)
        model_metrics = point_metrics(truth, point, insample_scale=scale)
        if q is not None and crps is not None:
            model_metrics |= _distribution_metrics(truth, q, fc.levels, crps)
        base = {}
        if naive is not None:
            base = point_metrics(truth, naive, insample_scale=scale)
            if fc.crps is not None:
                base["CRPS"] = base["MAE"]  # a point forecast's CRPS is its absolute error
        results[unit] = (model_metrics, base)
    return Evaluation(
        model=results["scaled"][0],
        baseline=results["scaled"][1],
        model_original=results["original"][0],
        baseline_original=results["original"][1],
        n_windows=len(windows),
        season_length=season_length,
        examples=_examples(windows, inverse(past, ids), y_orig, point_orig, q_orig, n_examples),
        missing=missing,
    )


def _distribution_metrics(
    truth: np.ndarray, q: np.ndarray, levels: tuple[float, ...], crps: np.ndarray
) -> dict[str, float]:
    """Pinball, CRPS and the central 80% interval's coverage and width (``levels`` = 0.1/0.5/0.9)."""
    lo, hi = q[..., levels.index(0.1)], q[..., levels.index(0.9)]
    return {
        "pinball": quantile_metrics(truth, q, list(levels))["pinball"],
        "CRPS": float(np.mean(crps)),
        "coverage_80": interval_coverage(truth, lo, hi),
        "width_80": float(np.mean(hi - lo)),
    }


def _slope(inverse: Callable[[np.ndarray, np.ndarray], np.ndarray], ids: np.ndarray) -> np.ndarray:
    """``[N, 1]`` slope of each window's (affine) inverse scaler.

    CRPS is positively homogeneous and shift-invariant, ``CRPS(aF + b, ay + b) = a CRPS(F, y)``,
    so the original-scale CRPS is the model-scale one times the slope; checked, not assumed.
    """
    base = np.zeros((len(ids), 1))
    zero, one, two = (inverse(base + v, ids) for v in (0.0, 1.0, 2.0))
    slope = one - zero
    if not np.allclose(two - one, slope, rtol=1e-6, atol=1e-9) or np.any(slope <= 0.0):
        raise TrainingError(
            "the inverse scaler is not increasing and affine per series, so the original-scale CRPS "
            "cannot be derived from the model-scale one",
            hint="use one of the data.scaler kinds (standard, robust, minmax, none)",
        )
    return slope


def _from_history(
    history: WindowHistory, unit: str, horizon: int, season: int, missing: dict[str, str]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Seasonal-naive forecasts and MASE scales on ``unit``; None (reason in ``missing``) where
    the series are too short to support them."""
    target, ids = history.target(unit), history.series_ids
    naive = scale = None
    try:
        naive = history_naive(target, history.series_start, history.origin, horizon, season, ids)
    except MetricUnavailable as exc:
        missing["seasonal-naive"] = exc.one_line()
    try:
        scale = train_scale(target, history.series_start, history.train_end, season, ids)
    except MetricUnavailable as exc:
        missing["MASE"] = exc.one_line()
    return naive, scale


def _examples(windows, past, y_true, point, quantiles, n: int) -> list[dict]:
    """A few windows spread over the test set, for the forecast-vs-actual plot."""
    if len(windows) == 0:
        return []
    picks = np.unique(np.linspace(0, len(windows) - 1, num=min(n, len(windows))).astype(int))
    out = []
    for i in picks:
        example = {
            "uid": str(windows.series_ids[i]),
            "past_t": np.arange(-past.shape[1], 0),
            "past_y": past[i],
            "fut_t": np.arange(y_true.shape[1]),
            "y_true": y_true[i],
            "y_pred": point[i],
        }
        if quantiles is not None:
            example["lo"], example["hi"] = quantiles[i, :, 0], quantiles[i, :, -1]
        out.append(example)
    return out

