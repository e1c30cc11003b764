"""The pre-training checklist over the long frame: time zones, order, duplicates, grid, gaps,
missing values, short series and covariate leakage.

Each check appends one :class:`~tsdl.data.check_report.CheckResult` and, where the config allows,
repairs the data (sorts, fills, drops) so that later checks still see meaningful input. Checks
never raise for bad data; :func:`tsdl.data.prepare.prepare_data` turns failed checks into one
:class:`~tsdl.errors.DataError`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tsdl.config.data import DataConfig
from tsdl.data.check_report import CheckReport
from tsdl.data.io import ID_COL, TARGET_COL, TIME_COL, SeriesFrame
from tsdl.data.leakage import Finding, SeriesValues, scan_column
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
    table, inserted = _check_grid(table, data, report)
    table = _check_missing(table, data, report, sf, inserted)
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


def _check_grid(table: SeriesTable, data: DataConfig, report: CheckReport) -> tuple[SeriesTable, np.ndarray]:
    """Align every series to one grid; gaps become NaN rows (``inserted``) that the missing policy fills."""
    none = np.zeros(len(table.times), bool)
    if table.n_series == 0:
        report.add("frequency", "fail", "no rows")
        return table, none
    steps = _series_steps(table)
    freq = _resolve_freq(table, data, steps, report)
    if freq is None or _stray_timestamps(table, steps, freq, report):
        return table, none
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
            return table, none
        table = _resample(table, grid)
        report.add("grid_alignment", "warn", f"{len(bad)} series resampled onto the '{freq}' grid (mean)")
        pos = np.searchsorted(grid, table.times, side="left")
    else:
        report.add("grid_alignment", "pass", f"all series on one '{freq}' grid")
    return _fill_gaps(table, pos, data, report)


def _stray_timestamps(table: SeriesTable, steps: np.ndarray, freq: str, report: CheckReport) -> bool:
    """Fail (True) when the common grid would be far larger than the data.

    One stray timestamp (a typo'd year, a 2099-12-31 placeholder) made the gap fill allocate every
    grid point between it and the rest: gigabytes for a small file, or an out-of-memory kill.
    """
    step = int(steps[steps > 0].min()) if (steps > 0).any() else 0
    span = (int(table.times.max()) - int(table.times.min())) // step if step else 0
    rows = len(table.times)
    if span <= 10 * rows + 100_000:
        return False
    sid = table.series_of_rows()
    jumps = np.where(sid[1:] == sid[:-1], np.diff(table.times), 0)
    j = int(np.argmax(jumps)) if len(jumps) else 0
    where = (
        f"; largest jump: series '{table.ids[sid[j]]}' from {pd.Timestamp(int(table.times[j]))} "
        f"to {pd.Timestamp(int(table.times[j + 1]))}" if len(jumps) and jumps[j] > 0 else ""
    )
    report.add(
        "gaps",
        "fail",
        f"the timestamps run from {pd.Timestamp(int(table.times.min()))} to {pd.Timestamp(int(table.times.max()))}: "
        f"{span + 1:,} '{freq}' grid points for {rows:,} rows{where}; fix or remove the stray timestamps",
    )
    return True


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


def _fill_gaps(table: SeriesTable, pos: np.ndarray, data: DataConfig, report: CheckReport) -> tuple[SeriesTable, np.ndarray]:
    first = pos[table.offsets[:-1]]
    last = pos[table.offsets[1:] - 1]
    full = last - first + 1
    missing = full - table.lengths
    if not missing.any():
        report.add("gaps", "pass", "no missing grid points")
        return table, np.zeros(len(table.times), bool)
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

    inserted = np.ones(offsets[-1], bool)
    inserted[dest] = False
    return SeriesTable(
        ids=table.ids,
        offsets=offsets,
        times=times,
        target=spread(table.target),
        covariates={c: spread(v) for c, v in table.covariates.items()},
        static=table.static,
        static_names=table.static_names,
        freq=table.freq,
    ), inserted


def _check_missing(
    table: SeriesTable, data: DataConfig, report: CheckReport, sf: SeriesFrame, inserted: np.ndarray
) -> SeriesTable:
    """Count the file's NaN/inf values by column (the gap rows are the gaps check's) and fill them,
    with the gap rows, by ``data.missing``."""
    columns = {"target": table.target, **table.covariates}
    bad = {name: ~np.isfinite(v) for name, v in columns.items()}
    sid = table.series_of_rows()
    in_file = {name: mask & ~inserted for name, mask in bad.items()}
    if not any(mask.any() for mask in in_file.values()):
        report.add("missing_values", "pass", "no NaN/inf in the file's target or covariate values")
        if not inserted.any() or data.missing == "fail":
            return table
    else:
        detail = _missing_detail(table, sf, in_file, sid)
        if data.missing == "fail":
            report.add("missing_values", "fail", f"{detail}; set data.missing to ffill|interpolate|zero to fill them")
            return table
        report.add("missing_values", "warn", f"{detail}; filled by data.missing={data.missing}")
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
        report.rows.pop()
        report.add("missing_values", "fail", f"series with no finite values to fill from: {_ids_preview(ids)}")
        return table
    table.target = filled["target"].to_numpy(np.float64)
    table.covariates = {c: filled[c].to_numpy(np.float64) for c in table.covariates}
    return table


def _missing_detail(table: SeriesTable, sf: SeriesFrame, bad: dict[str, np.ndarray], sid: np.ndarray) -> str:
    """``NaN/inf values in column 'y': 2, column 'temp': 1 (first: column 'y', series 's0', <time>)``.

    Columns by their names in the file: the target column, or in a wide file each series' own column.
    """
    wide = sf.layout == "wide"
    counts: dict[str, int] = {}
    first: tuple[int, str] | None = None
    for name, mask in bad.items():
        rows = np.flatnonzero(mask)
        if not len(rows):
            continue
        if name == "target" and wide:
            for s, n in zip(*np.unique(sid[rows], return_counts=True), strict=True):
                counts[str(table.ids[s])] = int(n)
        else:
            counts[sf.target_name if name == "target" else name] = len(rows)
        column = str(table.ids[sid[rows[0]]]) if name == "target" and wide else (sf.target_name if name == "target" else name)
        if first is None or rows[0] < first[0]:
            first = (int(rows[0]), column)
    parts = ", ".join(f"column '{c}': {n}" for c, n in list(counts.items())[:5])
    parts += f", ... ({len(counts)} columns)" if len(counts) > 5 else ""
    row, column = first  # type: ignore[misc]
    series = "" if wide else f", series '{table.ids[sid[row]]}'"
    return f"NaN/inf values in {parts} (first: column '{column}'{series}, {pd.Timestamp(int(table.times[row]))})"


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


def _check_leakage(table: SeriesTable, df: pd.DataFrame, sf: SeriesFrame, data: DataConfig, report: CheckReport) -> None:
    """Scan each covariate, and each numeric column the config leaves out, for copies of the target.

    Unused columns are scanned too: training ignores them, but a column that copies the target
    (or its future) is a sign of a leaky export, and one step from being declared a covariate.
    They are scanned on the file's rows (sorted, deduplicated; in a wide file against every
    series column), covariates on the repaired table. See :mod:`tsdl.data.leakage`.
    """
    if not table.covariates and not sf.audited:
        report.add("leakage", "pass", "no covariates or other numeric columns")
        return
    limits = data.checks.leakage_max_shift, data.checks.leakage_correlation
    declared = SeriesValues(table.target, table.series_of_rows(), table.ids)
    codes, names = pd.factorize(df[ID_COL])
    raw = SeriesValues(df[TARGET_COL].to_numpy(np.float64), codes, np.asarray(names, dtype=object))
    scans = [(name, scan_column(v, declared, *limits), False) for name, v in table.covariates.items()]
    scans += [(name, scan_column(df[name].to_numpy(np.float64), raw, *limits), True) for name in sf.audited]
    problems = [p for name, found, unused in scans if (p := _verdict(name, found, data, unused=unused))]
    if not problems:
        report.add("leakage", "pass", _pass_detail(scans, len(table.covariates), len(sf.audited), data))
        return
    status = "fail" if any(s == "fail" for s, _ in problems) else "warn"
    fixes = []
    if any(s == "fail" and "not in data.covariates" not in d and "move it to" not in d for s, d in problems):
        fixes.append("declared covariates: remove copies of the target from data.covariates")
    if any(s == "fail" and "not in data.covariates" in d for s, d in problems):
        fixes.append("unused columns: drop them from the file, or list known copies in data.checks.skip_columns")
    fix = f" ({'; '.join(fixes)})" if fixes else ""
    report.add("leakage", status, "; ".join(d for _, d in problems) + fix)


def _verdict(name: str, found: Finding | None, data: DataConfig, *, unused: bool) -> tuple[str, str] | None:
    """(status, detail) when the column's worst match is a copy or |corr| >= the threshold, else None."""
    if found is None or not (found.exact or abs(found.corr) >= data.checks.leakage_correlation):
        return None
    label = f"'{name}' (not in data.covariates)" if unused else f"'{name}'"
    where = f" in series '{found.series}'" if found.series is not None else ""
    corr = f" (corr {found.corr:+.3f})" if np.isfinite(found.corr) else ""
    if found.shift >= 0:
        when = "the target" if found.shift == 0 else f"the target {found.shift} step(s) ahead"
        copy = "is a copy of" if found.exact else "~"
        return "fail", f"{label} {copy} {when}{where}{corr}"
    if unused:
        return None  # a lag of the target: a fair past feature, and ignored anyway
    back = f"the target {-found.shift} step(s) back{where}{corr}"
    if name in data.covariates.future:
        return "fail", f"known-future {label} ~ {back}: it is past-only; move it to data.covariates.past"
    return "warn", f"past {label} ~ {back}"


def _pass_detail(scans: list[tuple[str, Finding | None, bool]], n_cov: int, n_unused: int, data: DataConfig) -> str:
    """What was scanned, the threshold, and the worst match found (so the bound is checkable)."""
    threshold, max_shift = data.checks.leakage_correlation, data.checks.leakage_max_shift
    scanned = f"{n_cov} covariates" + (f", {n_unused} unused columns" if n_unused else "")
    finite = [(n, f) for n, f, _ in scans if f is not None and np.isfinite(f.corr)]
    worst = ""
    if finite:
        name, f = max(finite, key=lambda item: abs(item[1].corr))
        worst = f"; worst {abs(f.corr):.3f}: '{name}' at shift {f.shift:+d}"
    return f"{scanned}: |corr| of step changes < {threshold} at shifts +-{max_shift}{worst}"


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
