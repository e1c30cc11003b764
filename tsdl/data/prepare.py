"""read -> checklist -> split -> scale: the data layer's front door for train, tune and predict."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from tsdl.config.data import DataConfig
from tsdl.config.loss import NONNEGATIVE_TARGET_LOSSES
from tsdl.config.root import TsdlConfig
from tsdl.data.calendar import calendar_features, calendar_names
from tsdl.data.check_report import CheckReport
from tsdl.data.checks import check_frame
from tsdl.data.future_rows import future_values, split_future_rows
from tsdl.data.history import WindowHistory
from tsdl.data.io import SeriesFrame, read_series_frame
from tsdl.data.scalers import SeriesScalers
from tsdl.data.seasons import season_length
from tsdl.data.split import SPLITS, SplitPlan, check_split, plan_split
from tsdl.data.table import SeriesTable
from tsdl.data.value_range import Unscalable, describe, find_unscalable
from tsdl.data.windows import WindowSet
from tsdl.errors import DataError

if TYPE_CHECKING:
    import ray.data

__all__ = ["PreparedData", "prepare_data", "prepare_inference", "run_checklist"]

Split = Literal["train", "val", "test"]


@dataclass(slots=True)
class _Checked:
    frame: SeriesFrame
    report: CheckReport
    table: SeriesTable
    plan: SplitPlan | None
    scalers: SeriesScalers | None = None


def _check(data: DataConfig) -> _Checked:
    frame = read_series_frame(data)
    report = CheckReport(source=frame.source)
    table = check_frame(frame, data, report).drop_head(data.split.skip_rows)
    plan = scalers = None
    if table.n_series and table.freq:
        plan = plan_split(table, data)
        check_split(table, plan, report)
        if report.ok:  # values are finite and every series has a train segment
            scalers = _check_value_range(table, plan, data, frame, report)
    return _Checked(frame, report, table, plan, scalers)


def _scaled_columns(data: DataConfig, target_name: str, table: SeriesTable) -> tuple[list[str], np.ndarray]:
    """The scaled columns' names (target, past, known-future) and their ``[T, C]`` values."""
    covs = [*data.covariates.past, *data.covariates.future]
    values = np.stack([table.target, *(table.covariates[c] for c in covs)], axis=1)
    return [target_name, *covs], values


def _check_value_range(
    table: SeriesTable, plan: SplitPlan, data: DataConfig, frame: SeriesFrame, report: CheckReport
) -> SeriesScalers:
    """Fit the train-only scalers and check that every value survives them and float32."""
    columns, values = _scaled_columns(data, frame.target_name, table)
    scalers = SeriesScalers.fit(data.scaler, table.ids, columns, values, table.offsets, plan.bounds[:, 1])
    idx = np.asarray(scalers.index_of(table.ids), np.int64)[table.series_of_rows()]
    bad = _unscalable(scalers, idx, values)
    if bad is None:
        report.add("value_range", "pass", f"every value fits float32 after {data.scaler} scaling")
    else:
        report.add("value_range", "fail", f"{_where_in(bad, frame, table, columns)}; {bad.fix}")
    return scalers


def _where(bad: Unscalable, frame: SeriesFrame, series: str, time_ns: int, columns: list[str]) -> str:
    """The bad value's column (a wide file's target column is its series), series and timestamp."""
    column = series if frame.layout == "wide" and bad.col == 0 else columns[bad.col]
    return describe(bad, series=series, time_ns=time_ns, column=column)


def _where_in(bad: Unscalable, frame: SeriesFrame, table: SeriesTable, columns: list[str]) -> str:
    series = str(table.ids[int(table.series_of_rows()[bad.row])])
    return _where(bad, frame, series, int(table.times[bad.row]), columns)


def _unscalable(scalers: SeriesScalers, idx: np.ndarray, values: np.ndarray) -> Unscalable | None:
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = _scale(scalers, idx, values)
    return find_unscalable(values, scaled, scalers.center[idx], scalers.scale[idx], scalers.kind)


def run_checklist(config: TsdlConfig) -> CheckReport:
    """Run every check and return the report; raises only when the input cannot be read."""
    return _check(config.data).report


@dataclass(slots=True)
class PreparedData:
    """Checked, split and scaled series, ready to be windowed locally or sharded with Ray.

    ``feature_names["past"]`` lists the ``F_past`` lookback channels (target first, then past
    covariates, then known-future ones); ``feature_names["future"]`` the ``F_future`` horizon
    channels; ``feature_names["static"]`` the ``S`` static columns.
    """

    report: CheckReport
    feature_names: dict[str, list[str]]
    input_chunk_length: int
    output_chunk_length: int
    freq: str
    season_length: int
    scalers: SeriesScalers
    split_boundaries: dict[str, dict[str, str]]
    stride: int
    source: str
    _hash: str
    _table: SeriesTable
    _plan: SplitPlan
    _data: np.ndarray = field(repr=False)
    _windows: dict[str, WindowSet] = field(default_factory=dict, repr=False)

    @property
    def n_past_features(self) -> int:
        return len(self.feature_names["past"])

    @property
    def n_future_features(self) -> int:
        return len(self.feature_names["future"])

    @property
    def n_static(self) -> int:
        return len(self.feature_names["static"])

    @property
    def model_dims(self) -> dict[str, int]:
        """The shape arguments of `tsdl.models.build_model` for this data."""
        return {
            "input_chunk_length": self.input_chunk_length,
            "output_chunk_length": self.output_chunk_length,
            "n_past_features": self.n_past_features,
            "n_future_features": self.n_future_features,
            "n_static": self.n_static,
        }

    @property
    def series_ids(self) -> list[str]:
        return [str(s) for s in self._table.ids]

    def content_hash(self) -> str:
        """sha256 of the raw input (file bytes, or synthetic parameters)."""
        return self._hash

    def windows(self, split: Split) -> WindowSet:
        """The split's windows over the shared scaled array (no copy)."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}", hint="use train, val or test")
        if split not in self._windows:
            self._windows[split] = _split_windows(self, split)
        return self._windows[split]

    def history(self, split: Split) -> WindowHistory:
        """Per window of ``split`` (same order as :meth:`windows`): its series' observed target
        before the forecast origin and its train segment, for the baseline and the MASE scale."""
        windows = self.windows(split)
        series = windows.segments[np.repeat(np.arange(len(windows.segments)), windows.segments[:, 3]), 4]
        start = self._table.offsets[:-1][series]
        return WindowHistory(
            scaled=self._data[:, 0],
            original=self._table.target,
            series_start=start,
            train_end=start + self._plan.bounds[series, 1],
            origin=windows.starts(np.arange(len(windows))) + self.input_chunk_length,
            series_ids=np.asarray(windows.series_ids),
        )

    def to_ray_datasets(
        self, *, num_workers: int, splits: tuple[str, ...] = ("train", "val"), rows_per_worker: int = 4
    ) -> dict[str, ray.data.Dataset]:
        """``{split: Dataset}`` with rows of equal window counts (see :mod:`tsdl.data.ray_data`)."""
        from tsdl.data.ray_data import to_ray_dataset

        if num_workers < 1:
            raise DataError(f"num_workers must be >= 1, got {num_workers}", hint="set resources.num_workers")
        return {
            s: to_ray_dataset(self.windows(s), num_workers=num_workers, rows_per_worker=rows_per_worker)
            for s in splits
        }

    def stats(self) -> dict[str, Any]:
        """Plain dict for tracking: sizes, per-split ranges and window counts, features."""
        return {
            "source": self.source,
            "n_series": self._table.n_series,
            "n_timesteps": int(len(self._table.times)),
            "freq": self.freq,
            "season_length": self.season_length,
            "input_chunk_length": self.input_chunk_length,
            "output_chunk_length": self.output_chunk_length,
            "stride": self.stride,
            "scaler": self.scalers.kind,
            "splits": {s: dict(info) for s, info in self.report.splits.items()},
            "features": {k: list(v) for k, v in self.feature_names.items()},
            "content_hash": self._hash,
        }


def prepare_data(
    config: TsdlConfig, *, fit_scalers: bool = True, scaler_state: dict | None = None
) -> PreparedData:
    """read -> checklist (raises DataError naming every failed check) -> split -> scale.

    Args:
        fit_scalers: fit per-series scalers on the train segments; False needs ``scaler_state``.
        scaler_state: a stored :meth:`SeriesScalers.state_dict` (resume, evaluation).
    """
    data = config.data
    checked = _check(data)
    report = checked.report
    if not report.ok or checked.plan is None:
        failed = "; ".join(f"{r.name}: {r.detail}" for r in report.failed) or "no series left"
        raise DataError(
            f"{checked.frame.source}: data checklist failed: {failed}",
            hint="run `tsdl check-data -c CONFIG` for the full report",
        )
    table, plan = checked.table, checked.plan
    future = list(data.covariates.future)
    columns, values = _scaled_columns(data, checked.frame.target_name, table)
    if fit_scalers:
        scalers = checked.scalers or SeriesScalers.fit(
            data.scaler, table.ids, columns, values, table.offsets, plan.bounds[:, 1]
        )
    elif scaler_state is None:
        raise DataError("prepare_data(fit_scalers=False) needs scaler_state", hint="pass the stored scalers")
    else:
        scalers = SeriesScalers.from_state(scaler_state)
        _check_scaler_fits(scalers, table, columns)
    idx = np.asarray(scalers.index_of(table.ids), np.int64)[table.series_of_rows()]
    _refuse_unscalable(checked.frame, table, columns, scalers, idx, values)
    scaled = _scale(scalers, idx, values)
    _check_target_domain(config, checked.frame.source, checked.frame.target_name, table, scaled[:, 0])
    cal = calendar_features(table.times, data.covariates.calendar, data.covariates.holidays_country)
    cal_names = calendar_names(data.covariates.calendar, data.covariates.holidays_country)
    flat = np.concatenate([scaled.astype(np.float32), cal], axis=1)
    return PreparedData(
        report=report,
        feature_names={
            "past": [*columns, *cal_names],
            "future": [*future, *cal_names],
            "static": list(table.static_names),
        },
        input_chunk_length=data.input_chunk_length,
        output_chunk_length=data.output_chunk_length,
        freq=table.freq,
        season_length=data.seasonality or season_length(table.freq),
        scalers=scalers,
        split_boundaries={s: {"start": i["start"], "end": i["end"]} for s, i in report.splits.items()},
        stride=data.stride,
        source=checked.frame.source,
        _hash=checked.frame.content_hash,
        _table=table,
        _plan=plan,
        _data=flat,
    )


def _scale(scalers: SeriesScalers, series: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``[T, C]`` values (target, past, known-future columns) scaled by the scalers of their
    ``[T]`` series indices: the one transform of training and prediction."""
    return (values - scalers.center[series]) / scalers.scale[series]


def _refuse_unscalable(
    frame: SeriesFrame, table: SeriesTable, columns: list[str], scalers: SeriesScalers, idx: np.ndarray,
    values: np.ndarray,
) -> None:
    """The value-range check for stored scalers (fine-tuning, evaluation, predict): a DataError."""
    bad = _unscalable(scalers, idx, values)
    if bad is not None:
        raise DataError(f"{frame.source}: {_where_in(bad, frame, table, columns)}", hint=bad.fix)


def _check_target_domain(config: TsdlConfig, source: str, target: str, table: SeriesTable, y: np.ndarray) -> None:
    """A loss that needs y >= 0 fails before Ray starts, not in a worker after every retry."""
    if config.loss.name not in NONNEGATIVE_TARGET_LOSSES or not (y < 0).any():
        return
    row = int(np.argmin(y))
    series = table.ids[int(table.series_of_rows()[row])]
    raise DataError(
        f"{source}: loss.name {config.loss.name!r} needs a non-negative target, but {target!r} has "
        f"{int((y < 0).sum())} negative values (min {float(y[row]):.4g} in series {series!r})",
        hint="use loss mse, mae or a probabilistic loss for targets that can be negative, "
        "or shift the target to be >= 0",
    )


def _check_scaler_fits(scalers: SeriesScalers, table: SeriesTable, columns: list[str]) -> None:
    if scalers.columns[1:] != columns[1:]:
        raise DataError(
            f"stored scalers cover columns {scalers.columns}, the data has {columns}",
            hint="use the same covariates as the training run",
        )
    scalers.index_of(table.ids)  # raises for unknown series


def _split_windows(prepared: PreparedData, split: str) -> WindowSet:
    table, plan = prepared._table, prepared._plan
    first, count, stride = plan.windows(split)
    lo, hi = plan.data_range(split)
    keep = count > 0
    base = table.offsets[:-1]
    segments = np.stack(
        [(base + lo)[keep], (base + hi)[keep], (base + first)[keep], count[keep], np.flatnonzero(keep)], axis=1
    )
    return WindowSet(
        prepared._data,
        table.times,
        segments,
        table.ids,
        table.static,
        input_chunk_length=prepared.input_chunk_length,
        output_chunk_length=prepared.output_chunk_length,
        n_future=prepared.n_future_features,
        stride=stride,
        freq=prepared.freq,
    )


def prepare_inference(config: TsdlConfig, path: str | Path, scaler_state: dict) -> WindowSet:
    """One window per series of ``path``: its last ``L`` points, scaled with the stored scalers.

    The horizon rows carry generated calendar features and, for a model trained with
    ``data.covariates.future``, those covariates' values from the ``H`` rows that end each
    series in the file (:mod:`tsdl.data.future_rows`); their target is NaN (unknown).
    """
    data = config.data
    L, H = data.input_chunk_length, data.output_chunk_length
    past, future = list(data.covariates.past), list(data.covariates.future)
    # Only the lookback must exist: check as if the horizon were zero steps long.
    infer_cfg = data.model_copy(
        update={"path": str(path), "dataset": None, "output_chunk_length": 0, "short_series": "fail"}
    )
    frame = read_series_frame(infer_cfg)
    future_rows = None
    if future:
        frame, future_rows = split_future_rows(frame, H, future)
    report = CheckReport(source=frame.source)
    table = check_frame(frame, infer_cfg, report)
    if not report.ok:
        failed = "; ".join(f"{r.name}: {r.detail}" for r in report.failed)
        raise DataError(f"{frame.source}: data checklist failed: {failed}", hint="fix the input file")
    scalers = SeriesScalers.from_state(scaler_state)
    columns = [frame.target_name, *past, *future]
    _check_scaler_fits(scalers, table, columns)
    n = table.n_series
    ends = table.offsets[1:]
    look = ends[:, None] - L + np.arange(L)  # [N, L]
    values = np.stack([table.target, *(table.covariates[c] for c in [*past, *future])], axis=1)
    last = table.times[ends - 1]
    horizon = np.stack(
        [pd.date_range(pd.Timestamp(int(t)), periods=H + 1, freq=table.freq)[1:].asi8 for t in last]
    ) if n else np.zeros((0, H), np.int64)
    ahead = np.full((n, H, values.shape[1]), np.nan)  # target and past covariates: unknown
    if future_rows is not None:
        ahead[:, :, 1 + len(past):] = future_values(
            future_rows, table.ids, last, horizon, future, source=frame.source, freq=table.freq
        )
    body = np.concatenate([values[look], ahead], axis=1).reshape(n * (L + H), -1)
    idx = np.repeat(np.asarray(scalers.index_of(table.ids), np.int64), L + H)
    times = np.concatenate([table.times[look], horizon], axis=1).reshape(-1)
    bad = _unscalable(scalers, idx, body)
    if bad is not None:
        where = _where(bad, frame, str(table.ids[bad.row // (L + H)]), int(times[bad.row]), columns)
        raise DataError(f"{frame.source}: {where}", hint=bad.fix)
    scaled = _scale(scalers, idx, body)
    cal = calendar_features(times, data.covariates.calendar, data.covariates.holidays_country)
    flat = np.concatenate([scaled.astype(np.float32), cal], axis=1)
    starts = np.arange(n, dtype=np.int64) * (L + H)
    segments = np.stack([starts, starts + L + H, starts, np.ones(n, np.int64), np.arange(n)], axis=1)
    return WindowSet(
        flat,
        times,
        segments,
        table.ids,
        table.static,
        input_chunk_length=L,
        output_chunk_length=H,
        n_future=len(future) + cal.shape[1],
        stride=1,
        freq=table.freq,
    )
