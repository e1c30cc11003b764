"""Read CSV / Parquet (through pyarrow) into one long frame: one row per (series, timestamp).

Both layouts end up in the same shape so that every later stage (checks, split, scaling,
windows) is written once: columns ``ID_COL``, ``TIME_COL``, ``TARGET_COL`` plus the configured
covariate columns under their own names. Anything that makes the file unreadable raises a
one-line :class:`~tsdl.errors.DataError` naming the file, the column and the fix.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from tsdl.config.data import DataConfig
from tsdl.data.frame import ID_COL, TARGET_COL, TIME_COL, SeriesFrame
from tsdl.errors import DataError
from tsdl.storage import absolute, filesystem, require_file

__all__ = [
    "ID_COL",
    "TARGET_COL",
    "TIME_COL",
    "SeriesFrame",
    "file_sha256",
    "read_series_frame",
]

_TZ_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (local path or object URI), streamed (datasets may be large)."""
    fs, inner = filesystem(path)
    digest = hashlib.sha256()
    with fs.open_input_stream(inner, compression=None) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_series_frame(data: DataConfig) -> SeriesFrame:
    """Read ``data.dataset`` (fetched on first use) or ``data.path``, else generate ``data.synthetic``.

    Raises:
        DataError: missing/empty file, unknown format, missing columns, unparseable dates,
            non-numeric values, undetectable layout.
    """
    if data.dataset is not None:
        from tsdl.data.datasets import dataset_path

        path = absolute(dataset_path(data.dataset))
    elif data.path is None:
        from tsdl.data.synthetic import synthetic_frame

        return synthetic_frame(data.synthetic)
    else:
        path = absolute(data.path)
    size = require_file(
        path,
        what="data file",
        fix="set data.path to an existing CSV/Parquet file or object URI (in a config file, relative "
        "paths start at the config's directory), or name a dataset: data.dataset: ETTh1",
        error=DataError,
    )
    if size == 0:
        raise DataError(f"{path}: file is empty", hint="write a header and at least one row of data")
    table = _read_table(path, data)
    if table.num_rows == 0:
        raise DataError(
            f"{path}: no data rows (only a header with columns {', '.join(table.column_names)})",
            hint="add rows to the file",
        )
    try:
        raw = table.to_pandas()
    except UnicodeDecodeError as exc:  # pyarrow reads CSV text as UTF-8; names are decoded here
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} in the header or a column)",
            hint="give a CSV/Parquet file; re-encode a non-UTF-8 CSV, e.g. `iconv -f latin1 -t utf-8`",
        ) from None
    layout = _detect_layout(raw, data, path)
    times, tz = _parse_times(raw, data.time_col, path)
    frame = _long(raw, times, data, path) if layout == "long" else _wide(raw, times, data, path)
    unused, audited = _unused_columns(raw, frame, data)
    repeat = len(frame) // len(raw)  # a wide file repeats each row once per series column
    for col in audited:  # the checklist scans them for copies of the target (of every series)
        frame[col] = np.tile(raw[col].astype("float64").to_numpy(na_value=np.nan), repeat)
    target_name = data.target_col
    return SeriesFrame(
        frame=frame,
        unused=unused,
        audited=audited,
        source=path,
        target_name=target_name,
        content_hash=file_sha256(path),
        tz_aware_rows=tz[0],
        tz_naive_rows=tz[1],
        tz_offsets=tz[2],
        layout=layout,
    )


def _read_table(path: str, data: DataConfig):  # -> pa.Table
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    fmt = data.format
    if fmt == "auto":
        suffix = "".join(PurePosixPath(path).suffixes[-2:]).lower()
        if suffix.endswith((".parquet", ".pq")):
            fmt = "parquet"
        elif suffix.endswith((".csv", ".csv.gz", ".txt")):
            fmt = "csv"
        else:
            raise DataError(
                f"{path}: cannot tell the format from the extension '{PurePosixPath(path).suffix}'",
                hint="use a .csv or .parquet file, or set data.format: csv|parquet",
            )
    fs, inner = filesystem(path)
    try:
        if fmt == "parquet":
            return pq.read_table(inner, filesystem=fs)
        # Timestamps are read as strings so that mixed time zones can be detected and reported.
        convert = pacsv.ConvertOptions(column_types={data.time_col: pa.string()})
        with fs.open_input_stream(inner) as stream:  # decompresses .gz by extension
            return pacsv.read_csv(stream, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Empty CSV file" in first:
            raise DataError(f"{path}: file is empty", hint="write a header and at least one row") from None
        raise DataError(
            f"{path}: cannot read as {fmt}: {first}",
            hint=f"check that the file is valid {fmt} (or set data.format)",
        ) from None


def _detect_layout(raw: pd.DataFrame, data: DataConfig, path: str) -> str:
    columns = list(raw.columns)
    if data.layout != "auto":
        return data.layout
    if data.id_col in columns:
        return "long"
    if data.time_col in columns:
        return "wide"
    raise DataError(
        f"{path}: cannot detect the layout: no id column '{data.id_col}' (long) and no time column "
        f"'{data.time_col}' (wide); columns are {_show(columns)}",
        hint="set data.time_col (and data.id_col for long files) or data.layout: long|wide",
    )


def _require(raw: pd.DataFrame, columns: list[str], path: str, what: str) -> None:
    for col in columns:
        if col not in raw.columns:
            raise DataError(
                f"{path}: missing {what} column '{col}'; columns are {_show(list(raw.columns))}",
                hint="rename the column in the file or set the matching data.* field to one of them",
            )


def _parse_times(raw: pd.DataFrame, col: str, path: str) -> tuple[np.ndarray, tuple[int, int, list[str]]]:
    """Timestamps as naive datetime64[ns]; aware ones are converted to UTC (offsets reported)."""
    _require(raw, [col], path, "time (data.time_col)")
    series = raw[col]
    if _blank(series).any():
        row = int(np.flatnonzero(_blank(series))[0])
        raise DataError(
            f"{path}: column '{col}' row {row + 1}: empty timestamp",
            hint="fill or remove rows without a timestamp",
        )
    if pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is not None:
            return series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ns]"), (
                len(series), 0, [str(series.dt.tz)])
        return series.to_numpy("datetime64[ns]"), (0, len(series), [])
    if pd.api.types.is_numeric_dtype(series):
        raise DataError(
            f"{path}: column '{col}' holds numbers ({series.iloc[0]!r}), not timestamps",
            hint="write ISO 8601 timestamps like 2024-01-31 13:00:00 (or set data.time_col)",
        )
    text = series.astype(str).str.strip()
    aware = text.str.contains(_TZ_SUFFIX, regex=True).to_numpy(bool)
    n_aware = int(aware.sum())
    offsets: list[str] = []
    if n_aware == len(text):
        offsets = sorted(set(text.str.extract(f"({_TZ_SUFFIX[:-1]})$", expand=False).dropna()))
        parsed = _to_datetime(text, path, col, utc=True).dt.tz_localize(None)
    elif n_aware == 0:
        parsed = _to_datetime(text, path, col, utc=False)
    else:
        # Mixed aware/naive: parse the wall-clock part so later checks can still run; the
        # time-zone check fails on the counts returned here.
        offsets = sorted(set(text[aware].str.extract(f"({_TZ_SUFFIX[:-1]})$", expand=False)))
        parsed = _to_datetime(text.str.replace(_TZ_SUFFIX, "", regex=True), path, col, utc=False)
    return parsed.to_numpy("datetime64[ns]"), (n_aware, len(text) - n_aware, offsets)


def _to_datetime(text: pd.Series, path: str, col: str, *, utc: bool) -> pd.Series:
    try:
        parsed = pd.to_datetime(text, format="ISO8601", utc=utc, errors="coerce")
    except (ValueError, TypeError):
        parsed = pd.Series(pd.NaT, index=text.index)
    if parsed.isna().any():
        try:
            parsed = pd.to_datetime(text, format="mixed", utc=utc, errors="coerce")
        except (ValueError, TypeError):
            pass
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column '{col}' row {row + 1}: cannot parse {text.iloc[row]!r} as a timestamp "
            f"({int(bad.sum())} unparseable values)",
            hint="write ISO 8601 timestamps like 2024-01-31 13:00:00",
        )
    return parsed


def _numeric(values: pd.Series, path: str, col: str, what: str) -> np.ndarray:
    """float64 values; NaN/inf are kept (the checklist counts them), text is an error."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64").to_numpy()
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64").to_numpy(na_value=np.nan)
    coerced = pd.to_numeric(values, errors="coerce")
    bad = coerced.isna().to_numpy() & values.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: {what} column '{col}' row {row + 1}: non-numeric value {values.iloc[row]!r} "
            f"({int(bad.sum())} such values)",
            hint=f"make '{col}' numeric (empty cells are read as missing) or drop it from the config",
        )
    return coerced.astype("float64").to_numpy(na_value=np.nan)


def _covariate_columns(data: DataConfig) -> list[str]:
    cov = data.covariates
    return list(dict.fromkeys([*cov.past, *cov.future, *cov.static]))


def _long(raw: pd.DataFrame, times: np.ndarray, data: DataConfig, path: str) -> pd.DataFrame:
    covs = _covariate_columns(data)
    _require(raw, [data.id_col], path, "series id (data.id_col)")
    _require(raw, [data.target_col], path, "target (data.target_col)")
    _require(raw, covs, path, "covariate (data.covariates)")
    ids = raw[data.id_col]
    if _blank(ids).any():
        row = int(np.flatnonzero(_blank(ids))[0])
        raise DataError(
            f"{path}: column '{data.id_col}' row {row + 1}: empty series id",
            hint="give every row a series id",
        )
    out = {
        ID_COL: ids.astype(str).to_numpy(object),
        TIME_COL: times,
        TARGET_COL: _numeric(raw[data.target_col], path, data.target_col, "target"),
    }
    for col in covs:
        out[col] = _numeric(raw[col], path, col, "covariate")
    return pd.DataFrame(out)


def _wide(raw: pd.DataFrame, times: np.ndarray, data: DataConfig, path: str) -> pd.DataFrame:
    """Each series column becomes one series; covariate columns are shared by all series."""
    covs = _covariate_columns(data)
    _require(raw, covs, path, "covariate (data.covariates)")
    if data.series_cols == "all":
        series_cols = [c for c in raw.columns if c != data.time_col and c not in covs]
        if not series_cols:
            raise DataError(
                f"{path}: wide layout has no series columns besides '{data.time_col}' and covariates",
                hint="add one column per series, or list them in data.series_cols",
            )
    elif data.series_cols:
        series_cols = list(data.series_cols)
        _require(raw, series_cols, path, "series (data.series_cols)")
    else:
        if data.target_col not in raw.columns:
            raise DataError(
                f"{path}: wide layout: target column '{data.target_col}' not found; columns are "
                f"{_show(list(raw.columns))}",
                hint="set data.target_col to one column, or data.series_cols: all (one series per column)",
            )
        series_cols = [data.target_col]
    n = len(raw)
    cov_values = {col: _numeric(raw[col], path, col, "covariate") for col in covs}
    out = {
        ID_COL: np.repeat(np.asarray(series_cols, dtype=object), n),
        TIME_COL: np.tile(times, len(series_cols)),
        TARGET_COL: np.concatenate([_numeric(raw[c], path, c, "series") for c in series_cols]),
    }
    for col, values in cov_values.items():
        out[col] = np.tile(values, len(series_cols))
    return pd.DataFrame(out)


def _unused_columns(raw: pd.DataFrame, frame: pd.DataFrame, data: DataConfig) -> tuple[list[str], list[str]]:
    """The file's columns the config leaves out, and the numeric ones among them to audit.

    In a long file each is audited against the target of its row's series; in a wide file
    against every series column (the frame repeats it once per series).
    """
    if data.series_cols == "all":
        return [], []
    used = {data.id_col, data.time_col, data.target_col, *_covariate_columns(data), *(data.series_cols or [])}
    unused = [str(c) for c in raw.columns if c not in used]
    numeric = (pd.api.types.is_numeric_dtype, pd.api.types.is_bool_dtype)
    skipped = set(data.checks.skip_columns) | set(frame.columns)
    return unused, [c for c in unused if c not in skipped and any(is_kind(raw[c]) for is_kind in numeric)]


def _blank(values: pd.Series) -> np.ndarray:
    """Missing cells; pyarrow reads an empty CSV cell of a text column as ''."""
    blank = values.isna().to_numpy(bool).copy()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        blank |= (values.astype(str).str.strip() == "").to_numpy(bool)
    return blank


def _show(columns: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(str(c)) for c in columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")
