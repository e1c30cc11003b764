"""What each evaluation window's series had observed: the input of the seasonal-naive baseline and
of the MASE scale, which look further back than a window's lookback (M4 / Hyndman & Koehler 2006).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WindowHistory"]


@dataclass(frozen=True, slots=True)
class WindowHistory:
    """Flat target columns and, per window, where its series, its train segment and its forecast begin.

    Series ``s`` of window ``i`` occupies flat rows ``series_start[i]:`` of ``scaled`` and
    ``original``; its train segment ends (exclusive) at ``train_end[i]`` and the window's first
    forecast step is row ``origin[i]``, so ``[series_start[i], origin[i])`` is everything observed
    before the forecast.

    Attributes:
        scaled: ``[T]`` target in model (scaled) units.
        original: ``[T]`` the same rows in data units.
        series_start, train_end, origin: ``[N]`` int64 flat rows.
        series_ids: ``[N]`` series id of each window.
    """

    scaled: np.ndarray
    original: np.ndarray
    series_start: np.ndarray
    train_end: np.ndarray
    origin: np.ndarray
    series_ids: np.ndarray

    def target(self, scale: str) -> np.ndarray:
        """The flat target on ``scale`` ('scaled' or 'original')."""
        return self.scaled if scale == "scaled" else self.original
