"""Per-series contiguous arrays: the checked, gap-free form every later stage works on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["SeriesTable"]


@dataclass(slots=True)
class SeriesTable:
    """Series stored back to back; series ``i`` occupies ``offsets[i]:offsets[i + 1]``.

    Attributes:
        ids: ``[N]`` series ids (str objects).
        offsets: ``[N + 1]`` int64 start of each series in the flat arrays.
        times: ``[T]`` int64 nanoseconds since the epoch (naive / UTC), sorted within a series.
        target: ``[T]`` float64.
        covariates: column name -> ``[T]`` float64 (past and known-future columns).
        static: ``[N, S]`` float64 static covariates, columns named ``static_names``.
        freq: pandas frequency alias of the common grid.
    """

    ids: np.ndarray
    offsets: np.ndarray
    times: np.ndarray
    target: np.ndarray
    covariates: dict[str, np.ndarray] = field(default_factory=dict)
    static: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    static_names: list[str] = field(default_factory=list)
    freq: str = ""

    @property
    def n_series(self) -> int:
        return int(len(self.ids))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def series_of_rows(self) -> np.ndarray:
        """``[T]`` series index of every flat row."""
        return np.repeat(np.arange(self.n_series), self.lengths)

    def select(self, keep: np.ndarray) -> SeriesTable:
        """A table with only the series where ``keep`` (``[N]`` bool) is true."""
        rows = np.repeat(keep, self.lengths)
        lengths = self.lengths[keep]
        return SeriesTable(
            ids=self.ids[keep],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            times=self.times[rows],
            target=self.target[rows],
            covariates={k: v[rows] for k, v in self.covariates.items()},
            static=self.static[keep],
            static_names=list(self.static_names),
            freq=self.freq,
        )

    def drop_head(self, n: int) -> SeriesTable:
        """A table without the first ``n`` timesteps of every series (shorter series end empty)."""
        if n <= 0:
            return self
        starts, lengths = self.offsets[:-1], self.lengths
        cut = np.minimum(lengths, n)
        keep_rows = np.ones(len(self.times), dtype=bool)
        for start, k in zip(starts, cut, strict=True):
            keep_rows[start : start + k] = False
        new_lengths = lengths - cut
        return SeriesTable(
            ids=self.ids,
            offsets=np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64),
            times=self.times[keep_rows],
            target=self.target[keep_rows],
            covariates={k: v[keep_rows] for k, v in self.covariates.items()},
            static=self.static,
            static_names=list(self.static_names),
            freq=self.freq,
        )
