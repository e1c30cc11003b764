"""Index-based forecasting windows over flat per-series arrays.

Nothing is materialized per window: a :class:`WindowSet` keeps the flat ``[T, F]`` array and,
per *segment* (a contiguous run of one series), the first window start, the window count and
the stride. Window ``i`` is found by a binary search over cumulative counts, and a batch is
gathered with one fancy-indexing call. Memory therefore grows with timesteps and segments, never
with windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from tsdl.config.training import AugmentConfig
from tsdl.data.batch import Batch
from tsdl.errors import DataError

__all__ = ["WindowSet"]


class WindowSet:
    """Windows of ``input_chunk_length`` lookback and ``output_chunk_length`` horizon.

    Args:
        data: ``[T, F]`` float32; column 0 is the target, the last ``n_future`` columns are
            known-future features (also part of the lookback).
        times: ``[T]`` int64 nanosecond timestamps of the rows of ``data``.
        segments: int64 ``[G, 5]`` rows ``(lo, hi, first_start, count, series)``: window
            starts lie in ``[lo, hi - L - H]`` (jitter stays inside), the owned windows start at
            ``first_start + j * stride`` for ``j < count``; ``series`` indexes ``series_names``.
        series_names: ``[N]`` series ids.
        static: ``[N, S]`` float32 static features per series.
        n_future: number of known-future columns at the end of ``data``.
        stride: step between consecutive owned windows of a segment.
        freq: pandas frequency alias (for horizon timestamps).
    """

    def __init__(
        self,
        data: np.ndarray,
        times: np.ndarray,
        segments: np.ndarray,
        series_names: np.ndarray,
        static: np.ndarray,
        *,
        input_chunk_length: int,
        output_chunk_length: int,
        n_future: int,
        stride: int,
        freq: str = "",
    ) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.times = np.asarray(times, np.int64)
        self.segments = np.asarray(segments, np.int64).reshape(-1, 5)
        self.series_names = np.asarray(series_names, dtype=object)
        self.static = np.asarray(static, np.float32).reshape(len(self.series_names), -1)
        self.input_chunk_length = int(input_chunk_length)
        self.output_chunk_length = int(output_chunk_length)
        self.n_future = int(n_future)
        self.stride = int(stride)
        self.freq = freq
        self._cum = np.concatenate([[0], np.cumsum(self.segments[:, 3])]).astype(np.int64)
        self._windows_view: torch.Tensor | None = None
        self._static_t: torch.Tensor | None = None
        self._origins: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self._cum[-1])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_windows_view"] = None  # a cache over ``data``; pickling it would copy the data
        state["_static_t"] = state["_origins"] = None  # caches, rebuilt on demand
        return state

    @property
    def n_features(self) -> int:
        return int(self.data.shape[1])

    def starts(self, indices: np.ndarray) -> np.ndarray:
        """``[B]`` flat row where each window's lookback starts."""
        return self._locate(self._checked(indices))[1]

    def _checked(self, indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)})")
        return indices

    def _locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(segment, flat lookback start) of every in-range window index, by one binary search."""
        seg = np.searchsorted(self._cum, indices, side="right") - 1
        return seg, self.segments[seg, 2] + (indices - self._cum[seg]) * self.stride

    def batch_at(self, indices: np.ndarray) -> Batch:
        """Gather windows ``indices`` (``[B]``) into a float32 :class:`Batch`."""
        seg, starts = self._locate(self._checked(indices))
        return self._gather(torch.from_numpy(starts), torch.from_numpy(self.segments[seg, 4]))

    def _gather(self, starts: torch.Tensor, series: torch.Tensor, factor: np.ndarray | None = None) -> Batch:
        """``[B]`` int64 lookback starts and series indices -> a :class:`Batch` (one copy)."""
        L, F = self.input_chunk_length, self.n_features
        # One index_select of [L + H, F] windows from a zero-copy unfold view: torch copies the
        # rows in parallel, several times faster than numpy fancy indexing of [B, L] row indices.
        # That copy is the only one: past, target and future are views into it (a second copy of
        # the lookback cost ~10% of a DLinear epoch; docs/benchmarks.md section 1).
        rows = self._window_view().index_select(0, starts)  # [B, L+H, F]
        past = rows[:, :L]  # [B, L, F]
        target = rows[:, L:, 0]  # [B, H]
        if factor is not None:
            scale = torch.from_numpy(factor)[:, None]
            past[:, :, 0] *= scale  # rows is this batch's own copy: scaling it in place is safe
            target *= scale
        future = rows[:, L:, F - self.n_future :] if self.n_future else rows[:, L:, :0]
        return Batch(past=past, future=future, static=self._static_tensor().index_select(0, series), target=target)

    def _static_tensor(self) -> torch.Tensor:
        """``[N, S]`` static features as a tensor (built once; ``index_select`` copies per batch)."""
        if self._static_t is None:
            self._static_t = torch.from_numpy(np.ascontiguousarray(self.static))
        return self._static_t

    def _window_view(self) -> torch.Tensor:
        """``[T - L - H + 1, L + H, F]`` view of every window of ``data`` (no copy), built once."""
        if self._windows_view is None:
            span = self.input_chunk_length + self.output_chunk_length
            data = torch.from_numpy(self.data) if self.data.flags.writeable else torch.tensor(self.data)
            if len(data) < span:  # no window fits; keep the shape so empty gathers still work
                data = torch.zeros((span, self.n_features), dtype=torch.float32)
            self._windows_view = data.unfold(0, span, 1).transpose(1, 2)
        return self._windows_view

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        drop_last: bool = False,
        augment: AugmentConfig | None = None,
        by: str = "window",
    ) -> Iterator[Batch]:
        """Yield batches of ``batch_size`` windows; pass ``seed + epoch`` for a new order per epoch.

        ``by="window"`` shuffles windows independently over (series, time); ``by="time"``
        shuffles forecast origins and keeps every series' window at one origin together, so a
        batch holds ``batch_size / n_series`` origins x all series (``training.batch_by``).
        ``augment`` (training windows only) jitters window starts within their segment and
        scales whole windows (target channel of the lookback and the target) by ``1 + N(0, s)``.
        """
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}", hint="use a positive batch size")
        rng = np.random.default_rng(seed)
        if not shuffle:
            order = np.arange(len(self))
        elif by == "time":
            order = self._by_shuffled_origin(rng)
        else:
            order = rng.permutation(len(self))
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        # Per epoch, not per step: every window's segment, lookback start and series, found once
        # by one vectorized search (3 int64 per window, transient; the windows themselves are
        # never materialized), then each step slices them. Batches and the rng stream are the
        # same as a per-step lookup's (tests/data/test_windows.py).
        order = order[:stop]
        seg, all_starts = self._locate(order)
        all_series = torch.from_numpy(self.segments[seg, 4])
        starts_t = torch.from_numpy(all_starts)
        jitter = augment.window_jitter if augment is not None else 0
        scaling = augment.magnitude_scaling if augment is not None else 0.0
        span = self.input_chunk_length + self.output_chunk_length
        for begin in range(0, stop, batch_size):
            end = begin + batch_size
            starts, factor = starts_t[begin:end], None
            if jitter > 0:
                shift = rng.integers(-jitter, jitter + 1, size=len(starts))
                lo, hi = self.segments[seg[begin:end], 0], self.segments[seg[begin:end], 1] - span
                starts = torch.from_numpy(np.clip(all_starts[begin:end] + shift, lo, np.maximum(hi, lo)))
            if scaling > 0:
                factor = (1.0 + rng.normal(0.0, scaling, size=len(starts))).astype(np.float32)
            yield self._gather(starts, all_series[begin:end], factor)

    def _by_shuffled_origin(self, rng: np.random.Generator) -> np.ndarray:
        """Window indices grouped by forecast origin, the origins in random order (series order
        within an origin): cut into batches, each holds whole origins when ``batch_size`` is a
        multiple of the series count."""
        n_origins, group = self._origin_groups()
        rank = rng.permutation(n_origins)
        return np.argsort(rank[group], kind="stable")

    def _origin_groups(self) -> tuple[int, np.ndarray]:
        """(number of distinct forecast origins, ``[W]`` origin of every window), found once: the
        sort behind it is the same every epoch (one int64 per window, like the epoch's order)."""
        if self._origins is None:
            origin_times = self.times[self.starts(np.arange(len(self))) + self.input_chunk_length]
            unique, group = np.unique(origin_times, return_inverse=True)
            self._origins = (len(unique), group.astype(np.int64, copy=False))
        return self._origins

    @property
    def series_ids(self) -> np.ndarray:
        """``[W]`` series id of every window (computed on demand)."""
        seg = np.repeat(np.arange(len(self.segments)), self.segments[:, 3])
        return self.series_names[self.segments[seg, 4]]

    @property
    def window_times(self) -> np.ndarray:
        """``[W]`` datetime64 first forecast timestamp of every window (computed on demand)."""
        return self.times[self.starts(np.arange(len(self))) + self.input_chunk_length].view("datetime64[ns]")

    def horizon_times(self, indices: np.ndarray) -> np.ndarray:
        """``[B, H]`` datetime64 timestamps of the forecast steps of windows ``indices``."""
        starts = self.starts(np.asarray(indices, np.int64)) + self.input_chunk_length
        return self.times[starts[:, None] + np.arange(self.output_chunk_length)].view("datetime64[ns]")

    def series_index(self) -> pd.DataFrame:
        """One row per window: ``window``, ``unique_id``, ``series`` (index), ``forecast_start``.

        With :meth:`horizon_times` this maps a prediction ``[W, H]`` to (unique_id, timestamp).
        """
        seg = np.repeat(np.arange(len(self.segments)), self.segments[:, 3])
        series = self.segments[seg, 4]
        return pd.DataFrame(
            {
                "window": np.arange(len(self)),
                "unique_id": self.series_names[series],
                "series": series,
                "forecast_start": self.window_times,
            }
        )
