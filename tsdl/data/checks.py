"""The pre-training checklist over the long frame: time zones, order, duplicates, grid, gaps,
missing values, short series and covariate leakage.

Each check appends one :class:`~tsdl.data.check_report.CheckResult` and, where the config allows,
repairs the data (sorts, fills, drops) so that later checks still see meaningful input. Checks
never raise for bad data; :func:`tsdl.data.prepare.prepare_data` turns failed checks into one
:class:`~tsdl.errors.DataError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from tsdl.config.data import DataConfig
from tsdl.data.check_report import CheckReport
from tsdl.data.io import ID_COL, TARGET_COL, TIME_COL, SeriesFrame
from tsdl.data.table import SeriesTable

__all__ = ["check_frame"]


def check_frame(sf: SeriesFrame, data: DataConfig, report: CheckReport) -> SeriesTable:
    """Run the frame-level checks in order and return the repaired, gap-free series table."""
    df = sf.frame
    _check_timezones(sf, report)
    df = _check_sorted(df, report)
    df = _check_duplicates(df, report)
    covs = [c for c in dict.fromkeys([*data.covariates.past, *data.covariates.future])]
    static_names = list(data.covariates.static)
    table = _to_table(df, covs, static_names)
    table = _check_grid(table, data, report)
    table = _check_missing(table, data, report)
    _check_static(df, static_names, report)
    table = _check_short(table, data, report)
    _check_leakage(table, df, sf, data, report)
    _check_unused(sf, report)
    return table


def _ids_preview(ids, limit: int = 5) -> str:
    ids = [str(i) for i in ids]
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def _check_timezones(sf: SeriesFrame, report: CheckReport) -> None:
    if sf.tz_aware_rows and sf.tz_naive_rows:
        report.add(
            "time_zones",
            "fail",
            f"mixed time zones: {sf.tz_aware_rows} timestamps with an offset "
            f"({', '.join(sf.tz_offsets[:3])}), {sf.tz_naive_rows} without; write all in one zone",
        )
    elif len(sf.tz_offsets) > 1:
        report.add(
            "time_zones", "warn", f"offsets {', '.join(sf.tz_offsets[:4])} converted to UTC"
        )
    else:
        zone = f"all {sf.tz_offsets[0]} (as UTC)" if sf.tz_offsets else "naive timestamps"
        report.add("time_zones", "pass", zone)


def _check_sorted(df: pd.DataFrame, report: CheckReport) -> pd.DataFrame:
    times = df[TIME_COL].to_numpy("datetime64[ns]").view(np.int64)
    ids = df[ID_COL].to_numpy()
    same = ids[1:] == ids[:-1]
    backwards = same & (np.diff(times) < 0)
    # Rows of one series must also be contiguous; a series that reappears later is unsorted too.
    first_seen = pd.Index(ids).drop_duplicates()
    contiguous = int((~same).sum()) + 1 == len(first_seen) if len(ids) else True
    if backwards.any() or not contiguous:
        unsorted_ids = sorted(set(ids[1:][backwards])) or list(first_seen[:1])
        report.add(
            "sorted",
            "warn",
            f"timestamps not sorted in {len(unsorted_ids)} series ({_ids_preview(unsorted_ids)}); sorted",
        )
        df = df.sort_values([ID_COL, TIME_COL], kind="stable").reset_index(drop=True)
    else:
        report.add("sorted", "pass", "timestamps ascending within every series")
    return df


def _check_duplicates(df: pd.DataFrame, report: CheckReport) -> pd.DataFrame:
    dup = df.duplicated([ID_COL, TIME_COL], keep="first").to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        series = sorted(set(df[ID_COL].to_numpy()[dup]))
        report.add(
            "duplicates",
            "fail",
            f"{int(dup.sum())} duplicate timestamps in {len(series)} series (first: series "
            f"'{df[ID_COL].iloc[first]}' at {df[TIME_COL].iloc[first]}); aggregate or remove them",
        )
        df = df.loc[~dup].reset_index(drop=True)
    else:
        report.add("duplicates", "pass", "no duplicate (series, timestamp) pairs")
    return df


def _to_table(df: pd.DataFrame, covs: list[str], static_names: list[str]) -> SeriesTable:
    ids = df[ID_COL].to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, np.int64)
    offsets = np.r_[starts, len(ids)].astype(np.int64)
    static = (
        df[static_names].to_numpy(np.float64)[starts] if static_names else np.zeros((len(starts), 0))
    )
    return SeriesTable(
        ids=ids[starts].astype(object),
        offsets=offsets,
        times=df[TIME_COL].to_numpy("datetime64[ns]").view(np.int64).copy(),
        target=df[TARGET_COL].to_numpy(np.float64).copy(),
        covariates={c: df[c].to_numpy(np.float64).copy() for c in covs},
        static=static,
        static_names=static_names,
    )


def _series_steps(table: SeriesTable) -> np.ndarray:
    """``[N]`` most common step (ns) per series; 0 for single-point series."""
    diffs = np.diff(table.times)
    sid = table.series_of_rows()[1:]
    valid = sid == table.series_of_rows()[:-1]
    counts = pd.DataFrame({"s": sid[valid], "d": diffs[valid]}).value_counts().reset_index()
    counts = counts.sort_values(["s", "count", "d"], ascending=[True, False, True])
    mode = counts.drop_duplicates("s").set_index("s")["d"]
    return mode.reindex(range(table.n_series), fill_value=0).to_numpy(np.int64)


def _resolve_freq(table: SeriesTable, data: DataConfig, steps: np.ndarray, report: CheckReport) -> str | None:
    if data.freq is not None:
        try:
            pd.tseries.frequencies.to_offset(data.freq)
        except ValueError:
            report.add("frequency", "fail", f"data.freq {data.freq!r} is not a pandas frequency alias")
            return None
        report.add("frequency", "pass", f"'{data.freq}' (from data.freq)")
        return data.freq
    distinct = np.unique(steps[steps > 0])
    if len(distinct) == 0:
        report.add("frequency", "fail", "cannot infer a frequency: every series has one point")
        return None
    if len(distinct) > 1 and not data.resample:
        by_step = {pd.Timedelta(int(s)): table.ids[steps == s] for s in distinct}
        parts = "; ".join(f"{k}: {_ids_preview(v, 2)}" for k, v in list(by_step.items())[:3])
        report.add(
            "frequency",
            "fail",
            f"series have different frequencies ({parts}); set data.resample: true and data.freq",
        )
        return None
    step = int(distinct.max())
    first = int(np.flatnonzero(steps == step)[0])
    sample = table.times[table.offsets[first] : min(table.offsets[first + 1], table.offsets[first] + 200)]
    freq = pd.infer_freq(pd.DatetimeIndex(sample.view("datetime64[ns]"))) if len(sample) >= 3 else None
    if freq is None:
        freq = pd.tseries.frequencies.to_offset(pd.Timedelta(step)).freqstr
    freq = freq.removeprefix("1") if freq[:1] == "1" and not freq[1:2].isdigit() else freq
    report.add("frequency", "pass", f"'{freq}' inferred for all {table.n_series} series")
    return freq


def _check_grid(table: SeriesTable, data: DataConfig, report: CheckReport) -> SeriesTable:
    """Align every series to one grid; gaps become NaN rows that the missing policy fills."""
    if table.n_series == 0:
        report.add("frequency", "fail", "no rows")
        return table
    freq = _resolve_freq(table, data, _series_steps(table), report)
    if freq is None:
        return table
    table.freq = freq
    grid = pd.date_range(
        pd.Timestamp(int(table.times.min())), pd.Timestamp(int(table.times.max())), freq=freq
    ).asi8
    pos = np.searchsorted(grid, table.times, side="left")
    on_grid = (pos < len(grid)) & (grid[np.minimum(pos, len(grid) - 1)] == table.times)
    if not on_grid.all():
        bad = sorted(set(table.ids[table.series_of_rows()[~on_grid]]))
        if not data.resample:
            report.add(
                "grid_alignment",
                "fail",
                f"{len(bad)} series off the common '{freq}' grid ({_ids_preview(bad)}); "
                "set data.resample: true to aggregate them onto it",
            )
            return table
        table = _resample(table, grid)
        report.add("grid_alignment", "warn", f"{len(bad)} series resampled onto the '{freq}' grid (mean)")
        pos = np.searchsorted(grid, table.times, side="left")
    else:
        report.add("grid_alignment", "pass", f"all series on one '{freq}' grid")
    return _fill_gaps(table, pos, data, report)


def _resample(table: SeriesTable, grid: np.ndarray) -> SeriesTable:
    bins = np.searchsorted(grid, table.times, side="right") - 1
    frame = pd.DataFrame({"s": table.series_of_rows(), "b": bins, "y": table.target, **table.covariates})
    agg = frame.groupby(["s", "b"], sort=True).mean().reset_index()
    counts = np.bincount(agg["s"].to_numpy(), minlength=table.n_series)
    return SeriesTable(
        ids=table.ids,
        offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
        times=grid[agg["b"].to_numpy()],
        target=agg["y"].to_numpy(np.float64),
        covariates={c: agg[c].to_numpy(np.float64) for c in table.covariates},
        static=table.static,
        static_names=table.static_names,
        freq=table.freq,
    )


def _fill_gaps(table: SeriesTable, pos: np.ndarray, data: DataConfig, report: CheckReport) -> SeriesTable:
    first = pos[table.offsets[:-1]]
    last = pos[table.offsets[1:] - 1]
    full = last - first + 1
    missing = full - table.lengths
    if not missing.any():
        report.add("gaps", "pass", "no missing grid points")
        return table
    share = missing / full
    worst = int(np.argmax(share))
    detail = (
        f"{int(missing.sum())} missing grid points in {int((missing > 0).sum())} series "
        f"(worst: '{table.ids[worst]}' {share[worst]:.1%})"
    )
    if share.max() > data.checks.max_gap_share:
        report.add("gaps", "fail", f"{detail} > data.checks.max_gap_share {data.checks.max_gap_share:.1%}")
    elif data.missing == "fail":
        report.add("gaps", "fail", f"{detail}; set data.missing to ffill|interpolate|zero to fill them")
    else:
        report.add("gaps", "warn", f"{detail}; filled by data.missing={data.missing}")
    offsets = np.r_[0, np.cumsum(full)].astype(np.int64)
    dest = offsets[table.series_of_rows()] + (pos - first[table.series_of_rows()])
    step_index = np.arange(offsets[-1]) - np.repeat(offsets[:-1], full)
    grid = pd.date_range(
        pd.Timestamp(int(table.times.min())), pd.Timestamp(int(table.times.max())), freq=table.freq
    ).asi8
    times = grid[np.repeat(first, full) + step_index]

    def spread(values: np.ndarray) -> np.ndarray:
        out = np.full(offsets[-1], np.nan)
        out[dest] = values
        return out

    return SeriesTable(
        ids=table.ids,
        offsets=offsets,
        times=times,
        target=spread(table.target),
        covariates={c: spread(v) for c, v in table.covariates.items()},
        static=table.static,
        static_names=table.static_names,
        freq=table.freq,
    )


def _check_missing(table: SeriesTable, data: DataConfig, report: CheckReport) -> SeriesTable:
    columns = {"target": table.target, **table.covariates}
    bad = {name: ~np.isfinite(v) for name, v in columns.items()}
    counts = {name: int(mask.sum()) for name, mask in bad.items() if mask.any()}
    if not counts:
        report.add("missing_values", "pass", "no NaN/inf in target or covariates")
        return table
    parts = ", ".join(f"{name}: {n}" for name, n in counts.items())
    sid = table.series_of_rows()
    worst = table.ids[sid[np.flatnonzero(bad[next(iter(counts))])[0]]]
    if data.missing == "fail":
        report.add(
            "missing_values",
            "fail",
            f"NaN/inf values ({parts}; first in series '{worst}'); set data.missing to "
            "ffill|interpolate|zero to fill them",
        )
        return table
    frame = pd.DataFrame({name: np.where(mask, np.nan, columns[name]) for name, mask in bad.items()})
    grouped = frame.groupby(sid, sort=False)
    if data.missing == "zero":
        filled = frame.fillna(0.0)
    elif data.missing == "ffill":
        filled = grouped.ffill()
        filled = filled.groupby(sid, sort=False).bfill()
    else:
        filled = grouped.transform(lambda col: col.interpolate(limit_direction="both"))
    empty = filled.isna().any(axis=1).to_numpy()
    if empty.any():
        ids = sorted(set(table.ids[sid[empty]]))
        report.add("missing_values", "fail", f"series with no finite values to fill from: {_ids_preview(ids)}")
        return table
    report.add("missing_values", "warn", f"NaN/inf values ({parts}) filled by data.missing={data.missing}")
    table.target = filled["target"].to_numpy(np.float64)
    table.covariates = {c: filled[c].to_numpy(np.float64) for c in table.covariates}
    return table


def _check_static(df: pd.DataFrame, static_names: list[str], report: CheckReport) -> None:
    if not static_names:
        return
    varying = df.groupby(ID_COL, sort=False)[static_names].nunique(dropna=False).max()
    bad = [c for c in static_names if varying[c] > 1]
    nan = [c for c in static_names if not np.isfinite(df[c].to_numpy(np.float64)).all()]
    if bad:
        report.add("static_covariates", "fail", f"static covariates vary within a series: {', '.join(bad)}")
    elif nan:
        report.add("static_covariates", "fail", f"static covariates with NaN/inf: {', '.join(nan)}")
    else:
        report.add("static_covariates", "pass", f"{len(static_names)} constant per series")


def _check_short(table: SeriesTable, data: DataConfig, report: CheckReport) -> SeriesTable:
    need = data.input_chunk_length + data.output_chunk_length
    short = table.lengths < need
    if not short.any():
        report.add("short_series", "pass", f"all {table.n_series} series have >= {need} points")
        return table
    ids = table.ids[short]
    detail = f"{len(ids)} series shorter than input+output = {need} points ({_ids_preview(ids)})"
    if data.short_series == "fail" or short.all():
        hint = "all series are short; lower data.input_chunk_length" if short.all() else "set data.short_series: drop"
        report.add("short_series", "fail", f"{detail}; {hint}")
        return table
    report.add("short_series", "warn", f"{detail}; dropped")
    return table.select(~short)


@dataclass(frozen=True)
class _Target:
    """The target as the leakage scan compares against it: raw values, per-series z-scores, series."""

    values: np.ndarray
    sid: np.ndarray

    @cached_property
    def z(self) -> np.ndarray:
        return _zscore(self.values, self.sid)


def _check_leakage(table: SeriesTable, df: pd.DataFrame, sf: SeriesFrame, data: DataConfig, report: CheckReport) -> None:
    """Correlate each covariate, and each numeric column the config leaves out, with the shifted target.

    Unused columns are scanned too: training ignores them, but a column that copies the target
    (or its future) is a sign of a leaky export, and one step from being declared a covariate.
    They are scanned on the file's rows (sorted, deduplicated), covariates on the repaired table.
    """
    if not table.covariates and not sf.audited:
        report.add("leakage", "pass", "no covariates or other numeric columns")
        return
    declared = _Target(table.target, table.series_of_rows())
    raw = _Target(df[TARGET_COL].to_numpy(np.float64), pd.factorize(df[ID_COL])[0])
    found = [_leak(name, values, declared, data, unused=False) for name, values in table.covariates.items()]
    found += [_leak(name, df[name].to_numpy(np.float64), raw, data, unused=True) for name in sf.audited]
    problems = [p for p in found if p is not None]
    if not problems:
        threshold, max_shift = data.checks.leakage_correlation, data.checks.leakage_max_shift
        scanned = f"{len(table.covariates)} covariates" + (f", {len(sf.audited)} unused columns" if sf.audited else "")
        report.add("leakage", "pass", f"{scanned}: |corr| < {threshold} at shifts +-{max_shift}")
        return
    status = "fail" if any(s == "fail" for s, _ in problems) else "warn"
    fix = ""
    if any("not in data.covariates" in d and s == "fail" for s, d in problems):
        fix = " (unused columns: drop them from the file, or list known copies in data.checks.skip_columns)"
    report.add("leakage", status, "; ".join(d for _, d in problems) + fix)


def _leak(name: str, values: np.ndarray, target: _Target, data: DataConfig, *, unused: bool) -> tuple[str, str] | None:
    """(status, detail) when `values` copies or tracks the target at some shift, else None."""
    threshold, max_shift = data.checks.leakage_correlation, data.checks.leakage_max_shift
    x = _zscore(values, target.sid)
    label = f"'{name}' (not in data.covariates)" if unused else f"'{name}'"
    for shift in range(-max_shift, max_shift + 1):
        corr = _shifted_corr(x, target.z, target.sid, shift)
        if not np.isfinite(corr) or abs(corr) < threshold:
            continue
        if shift >= 0:
            when = "the target" if shift == 0 else f"the target {shift} step(s) ahead"
            copy = "is a copy of" if _shifted_equal(values, target.values, target.sid, shift) else "~"
            return "fail", f"{label} {copy} {when} (corr {corr:+.3f})"
        if unused:
            return None  # a lag of the target: a fair past feature, and ignored anyway
        if name in data.covariates.future:
            return (
                "fail",
                f"known-future {label} ~ the target {-shift} step(s) back (corr {corr:+.3f}): "
                "it is past-only; move it to data.covariates.past",
            )
        return "warn", f"past {label} ~ the target {-shift} step(s) back (corr {corr:+.3f})"
    return None


def _check_unused(sf: SeriesFrame, report: CheckReport) -> None:
    """List the file's columns that training will ignore (not in data.covariates)."""
    if not sf.unused:
        report.add("unused_columns", "pass", "every column of the file is used")
        return
    shown = ", ".join(f"'{c}'" for c in sf.unused[:8]) + (f" and {len(sf.unused) - 8} more" if len(sf.unused) > 8 else "")
    report.add(
        "unused_columns",
        "pass",
        f"{len(sf.unused)} column(s) not in the config, ignored by training: {shown} "
        "(declare them in data.covariates to use them)",
    )


def _zscore(values: np.ndarray, sid: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({"v": values})
    grouped = frame.groupby(sid, sort=False)["v"]
    std = grouped.transform("std").to_numpy()
    std = np.where(std > 0, std, np.nan)
    with np.errstate(invalid="ignore"):  # inf left by a failed missing-values check
        return (values - grouped.transform("mean").to_numpy()) / std


def _shifted_pairs(x: np.ndarray, y: np.ndarray, sid: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """The finite pairs ``(x[t], y[t + shift])`` whose two points lie in the same series."""
    n = len(x)
    if abs(shift) >= n:
        return x[:0], y[:0]
    lo, hi = max(0, -shift), n - max(0, shift)
    xs, ys = x[lo:hi], y[lo + shift : hi + shift]
    valid = (sid[lo:hi] == sid[lo + shift : hi + shift]) & np.isfinite(xs) & np.isfinite(ys)
    return xs[valid], ys[valid]


def _shifted_corr(x: np.ndarray, y: np.ndarray, sid: np.ndarray, shift: int) -> float:
    """Pearson correlation of ``x[t]`` and ``y[t + shift]`` over pairs inside one series."""
    xs, ys = _shifted_pairs(x, y, sid, shift)
    if len(xs) < 3:
        return float("nan")
    xs, ys = xs - xs.mean(), ys - ys.mean()
    denom = np.sqrt((xs * xs).sum() * (ys * ys).sum())
    return float((xs * ys).sum() / denom) if denom > 0 else float("nan")


def _shifted_equal(x: np.ndarray, y: np.ndarray, sid: np.ndarray, shift: int) -> bool:
    """Whether ``x[t] == y[t + shift]`` (to float tolerance) wherever both exist in one series."""
    xs, ys = _shifted_pairs(x, y, sid, shift)
    return len(xs) > 0 and bool(np.allclose(xs, ys, rtol=1e-9, atol=1e-12))
