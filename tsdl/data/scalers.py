"""Per-series scalers fitted on the train segment only, with a serializable state.

``scaled = (x - center) / scale`` per series and per column (target and each covariate).
Statistics come from rows ``[0, train_end)`` of each series, so no val/test value can
influence them. A zero spread is replaced by 1 so constant series stay finite; an overflowing
one is kept (inf) for the value-range check to report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from tsdl.errors import DataError

__all__ = ["ScalerKind", "SeriesScalers", "fit_stats"]

ScalerKind = Literal["standard", "robust", "minmax", "none"]
_KINDS = ("standard", "robust", "minmax", "none")


def fit_stats(values: np.ndarray, kind: ScalerKind) -> tuple[float, float]:
    """``(center, scale)`` of one train segment ``[T]``.

    A zero spread becomes 1 (a constant series stays finite). A spread that overflows float64
    (values near 1e308) stays inf: it is reported by the value-range check
    (:mod:`tsdl.data.value_range`), never silently replaced by 1.
    """
    if kind == "none" or len(values) == 0:
        return 0.0, 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "standard":
            # On values divided by their largest magnitude, so that the squares cannot overflow.
            top = float(np.max(np.abs(values)))
            unit = top if np.isfinite(top) and top > 0 else 1.0
            center, scale = float(np.mean(values / unit)) * unit, float(np.std(values / unit)) * unit
        elif kind == "robust":
            q25, center, q75 = np.percentile(values, [25, 50, 75])
            center, scale = float(center), float(q75 - q25)
        else:
            lo, hi = float(np.min(values)), float(np.max(values))
            center, scale = lo, hi - lo
    if np.isnan(scale):
        return center, float("inf")
    return center, scale if scale != 0 else 1.0


class SeriesScalers:
    """Centers and scales per series and per column; ``columns[0]`` is the target.

    Args:
        kind: standard | robust | minmax | none.
        series_ids: ``[N]`` series ids, in the order of the rows of ``center``/``scale``.
        columns: scaled column names, target first.
        center / scale: ``[N, C]`` float64.
    """

    def __init__(
        self,
        kind: ScalerKind,
        series_ids: Sequence[str],
        columns: Sequence[str],
        center: np.ndarray,
        scale: np.ndarray,
    ) -> None:
        if kind not in _KINDS:
            raise DataError(f"unknown scaler {kind!r}", hint=f"use one of {', '.join(_KINDS)}")
        self.kind: ScalerKind = kind
        self.series_ids = [str(s) for s in series_ids]
        self.columns = list(columns)
        self.center = np.asarray(center, np.float64).reshape(len(self.series_ids), len(self.columns))
        self.scale = np.asarray(scale, np.float64).reshape(len(self.series_ids), len(self.columns))
        self._index = {sid: i for i, sid in enumerate(self.series_ids)}

    @classmethod
    def fit(
        cls,
        kind: ScalerKind,
        series_ids: Sequence[str],
        columns: Sequence[str],
        values: np.ndarray,
        offsets: np.ndarray,
        train_end: np.ndarray,
    ) -> SeriesScalers:
        """Fit on ``values[offsets[i] : offsets[i] + train_end[i]]`` for each series ``i``.

        Args:
            values: ``[T, C]`` flat per-series values, columns as ``columns``.
            offsets: ``[N + 1]`` series starts in ``values``.
            train_end: ``[N]`` train rows per series.
        """
        n, c = len(series_ids), len(columns)
        center, scale = np.zeros((n, c)), np.ones((n, c))
        for i in range(n):
            seg = values[offsets[i] : offsets[i] + train_end[i]]
            for j in range(c):
                center[i, j], scale[i, j] = fit_stats(seg[:, j], kind)
        return cls(kind, series_ids, columns, center, scale)

    def index_of(self, series: str | int | np.ndarray | Sequence) -> np.ndarray | int:
        """Row index of a series id (or index), or ``[B]`` indices for an array of them."""
        if isinstance(series, (int, np.integer)):
            return int(series)
        if isinstance(series, str):
            if series not in self._index:
                raise DataError(
                    f"series '{series}' has no fitted scaler (known: {', '.join(self.series_ids[:5])}...)",
                    hint="predict only series that were present in training",
                )
            return self._index[series]
        arr = np.asarray(series)
        if arr.dtype.kind in "iu":
            return arr.astype(np.int64)
        return np.asarray([self.index_of(str(s)) for s in arr], np.int64)

    def transform(self, series: Any, values: np.ndarray, *, column: int | str = 0) -> np.ndarray:
        """Scale ``values`` (``[..]`` for one series, or ``[B, ..]`` with ``[B]`` series)."""
        center, scale = self._stats(series, values, column)
        return (np.asarray(values, np.float64) - center) / scale

    def inverse_transform(self, series: Any, values: np.ndarray, *, column: int | str = 0) -> np.ndarray:
        """Back to the data's units (predictions, metrics); same shapes as :meth:`transform`.

        Works on numpy arrays and torch tensors (``[B, H]`` or ``[B, H, Q]``).
        """
        center, scale = self._stats(series, values, column)
        if hasattr(values, "detach"):  # torch tensor: keep its type, dtype and device
            import torch

            c = torch.as_tensor(center, dtype=values.dtype, device=values.device)
            s = torch.as_tensor(scale, dtype=values.dtype, device=values.device)
            return values * s + c
        return np.asarray(values, np.float64) * scale + center

    def _stats(self, series: Any, values: Any, column: int | str) -> tuple[np.ndarray, np.ndarray]:
        j = self.columns.index(column) if isinstance(column, str) else int(column)
        idx = self.index_of(series)
        center, scale = self.center[idx, j], self.scale[idx, j]
        if isinstance(idx, np.ndarray):
            extra = len(values.shape) - 1
            center = center.reshape(-1, *([1] * extra))
            scale = scale.reshape(-1, *([1] * extra))
        return center, scale

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable state, stored with the run."""
        return {
            "kind": self.kind,
            "series_ids": list(self.series_ids),
            "columns": list(self.columns),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesScalers:
        """Rebuild from :meth:`state_dict` output."""
        try:
            return cls(state["kind"], state["series_ids"], state["columns"], state["center"], state["scale"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"invalid scaler state: {exc}", hint="use the scalers.json stored with the training run"
            ) from None
