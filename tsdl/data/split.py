"""Temporal train/val/test split without shuffling, and the windows each split owns.

A window starting at row ``s`` of a series reads the lookback ``[s, s + L)`` and forecasts
``[s + L, s + L + H)``. A window belongs to a split when its whole forecast lies inside that
split's segment; val/test lookbacks may reach back into the preceding segment (that is how the
standard ETTh1 protocol evaluates), but no val/test *target* is ever a train target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsdl.config.data import DataConfig
from tsdl.data.check_report import CheckReport
from tsdl.data.table import SeriesTable

__all__ = ["SPLITS", "SplitName", "SplitPlan", "check_split", "plan_split"]

SPLITS = ("train", "val", "test")
SplitName = str


@dataclass(slots=True)
class SplitPlan:
    """Per-series segment boundaries (row indices relative to each series' first row).

    Attributes:
        bounds: ``[N, 4]`` int64: ``0 <= train_end <= val_end <= test_end <= length``; train is
            ``[0, train_end)``, val ``[train_end, val_end)``, test ``[val_end, test_end)``.
        input_chunk_length / output_chunk_length: ``L`` and ``H``.
        stride: step between training windows (val/test use every window).
    """

    bounds: np.ndarray
    input_chunk_length: int
    output_chunk_length: int
    stride: int

    def segment(self, split: SplitName) -> tuple[np.ndarray, np.ndarray]:
        """``([N], [N])`` rows ``[begin, end)`` of each series' split segment (forecast targets)."""
        k = SPLITS.index(split)
        begin = self.bounds[:, 0] if k == 0 else self.bounds[:, k]
        return begin.copy(), self.bounds[:, k + 1].copy()

    def windows(self, split: SplitName) -> tuple[np.ndarray, np.ndarray, int]:
        """``(first_start [N], count [N], stride)`` of the split's windows, per series.

        Window ``j`` of series ``i`` starts at row ``first_start[i] + j * stride``.
        """
        L, H = self.input_chunk_length, self.output_chunk_length
        begin, end = self.segment(split)
        stride = self.stride if split == "train" else 1
        first = np.maximum(begin - L, 0)
        last = end - L - H
        count = np.where(last >= first, (last - first) // stride + 1, 0)
        return first.astype(np.int64), count.astype(np.int64), stride

    def data_range(self, split: SplitName) -> tuple[np.ndarray, np.ndarray]:
        """``([N], [N])`` rows a split's windows read: lookback included, nothing past its end."""
        begin, end = self.segment(split)
        return np.maximum(begin - self.input_chunk_length, 0), end


def plan_split(table: SeriesTable, data: DataConfig) -> SplitPlan:
    """Compute each series' train/val/test boundaries from ``data.split``."""
    split = data.split
    lengths = table.lengths.astype(np.int64)
    if split.method == "fraction":
        n_test = np.floor(lengths * split.test_fraction).astype(np.int64)
        n_val = np.floor(lengths * split.val_fraction).astype(np.int64)
        train_end = lengths - n_val - n_test
        val_end = train_end + n_val
        test_end = lengths
    elif split.method == "rows":
        train_end = np.minimum(lengths, split.train_rows)
        val_end = np.minimum(lengths, train_end + split.val_rows)
        test_end = np.minimum(lengths, val_end + split.test_rows)
    else:
        val_ts = pd.Timestamp(split.val_start).value
        test_ts = pd.Timestamp(split.test_start).value
        train_end = np.empty(table.n_series, np.int64)
        val_end = np.empty(table.n_series, np.int64)
        for i in range(table.n_series):
            times = table.times[table.offsets[i] : table.offsets[i + 1]]
            train_end[i], val_end[i] = np.searchsorted(times, [val_ts, test_ts], side="left")
        test_end = lengths
    bounds = np.stack([np.zeros_like(lengths), train_end, val_end, test_end], axis=1).astype(np.int64)
    return SplitPlan(bounds, data.input_chunk_length, data.output_chunk_length, data.stride)


def check_split(table: SeriesTable, plan: SplitPlan, report: CheckReport) -> None:
    """Append ``split_windows`` and ``split_overlap`` rows and fill ``report.splits``."""
    missing: dict[str, list[str]] = {}
    for split in SPLITS:
        first, count, stride = plan.windows(split)
        has = count > 0
        missing[split] = [str(i) for i in table.ids[~has]]
        begin, end = plan.segment(split)
        nonempty = end > begin
        start_ts = table.times[(table.offsets[:-1] + begin)[nonempty]]
        end_ts = table.times[(table.offsets[:-1] + end - 1)[nonempty]]
        report.splits[split] = {
            "start": _ts(start_ts.min()) if nonempty.any() else "-",
            "end": _ts(end_ts.max()) if nonempty.any() else "-",
            "n_windows": int(count.sum()),
            "n_series": int(has.sum()),
        }
    empty = [s for s in SPLITS if report.splits[s]["n_windows"] == 0]
    lacking = {s: ids for s, ids in missing.items() if ids}
    if "train" in empty or "val" in empty:
        report.add(
            "split_windows",
            "fail",
            f"no {' / '.join(s for s in empty)} windows; lower input/output_chunk_length or change data.split",
        )
    elif lacking:
        parts = "; ".join(f"{len(ids)} without {s} windows ({', '.join(ids[:3])})" for s, ids in lacking.items())
        report.add("split_windows", "warn", parts)
    else:
        counts = ", ".join(f"{s} {report.splits[s]['n_windows']}" for s in SPLITS)
        report.add("split_windows", "pass", f"every series has windows in every split ({counts})")
    _check_overlap(plan, report)


def _check_overlap(plan: SplitPlan, report: CheckReport) -> None:
    """The last train target must precede the first val target, and val the first test target."""
    L, H = plan.input_chunk_length, plan.output_chunk_length
    overlaps = 0
    ends = {}
    for split in SPLITS:
        first, count, stride = plan.windows(split)
        has = count > 0
        lo = np.where(has, first + L, np.iinfo(np.int64).max)
        hi = np.where(has, first + (count - 1) * stride + L + H - 1, -1)
        ends[split] = (lo, hi)
    for before, after in (("train", "val"), ("val", "test")):
        overlaps += int((ends[before][1] >= ends[after][0]).sum())
    if overlaps:
        report.add("split_overlap", "fail", f"{overlaps} series whose later-split horizons overlap earlier targets")
    else:
        report.add("split_overlap", "pass", "val/test horizons never overlap train targets")


def _ts(value: int) -> str:
    return str(pd.Timestamp(int(value)))
