"""Read CSV / Parquet (through pyarrow) into one long frame: one row per (series, timestamp).

Both layouts end up in the same shape so that every later stage (checks, split, scaling,
windows) is written once: columns ``ID_COL``, ``TIME_COL``, ``TARGET_COL`` plus the configured
covariate columns under their own names. Anything that makes the file unreadable raises a
one-line :class:`~tsdl.errors.DataError` naming the file, the column and the fix.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from tsdl.config.data import DataConfig
from tsdl.data.frame import ID_COL, TARGET_COL, TIME_COL, SeriesFrame
from tsdl.data.sniff import Sniffed, clip, expected_format, sniff, sniff_delimiter
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
_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")


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
    if table.num_rows == 0 and not any(str(c).strip() for c in table.column_names):
        raise DataError(f"{path}: no header and no rows (only blank lines)", hint="write a header and at least one row")
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
    """The file as a pyarrow table, opened as what its bytes say it is (see :mod:`tsdl.data.sniff`)."""
    import pyarrow as pa

    fs, inner = filesystem(path)
    with fs.open_input_stream(inner, compression=None) as stream:
        head = stream.read(8192)
    sniffed = sniff(head)
    if sniffed.refusal is not None:
        what, fix = sniffed.refusal
        raise DataError(f"{path}: {what}", hint=fix)
    fmt = _choose_format(path, data, sniffed, head)
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(inner, filesystem=fs)
        elif fmt == "arrow":
            table = _read_arrow(fs, inner, head)
        else:
            table = _read_csv(fs, inner, path, data, sniffed)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, UnicodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Empty CSV file" in first:
            raise DataError(f"{path}: file is empty", hint="write a header and at least one row") from None
        raise DataError(
            f"{path}: cannot read as {fmt}: {clip(first, 200)}",
            hint=f"check that the file is valid {fmt} (or set data.format)",
        ) from None
    return _clean_columns(table, path)


def _choose_format(path: str, data: DataConfig, sniffed: Sniffed, head: bytes) -> str:
    """The content decides; a text file under a binary format's name, or of an unknown kind, is refused."""
    claimed = expected_format(path)
    suffix = PurePosixPath(path).suffix
    if data.format != "auto":
        if data.format != sniffed.format:
            raise DataError(
                f"{path}: data.format is {data.format}, but the file is {sniffed.what}",
                hint=f"set data.format: {sniffed.format} (or auto)",
            )
        return data.format
    if sniffed.format == "csv" and claimed in ("parquet", "arrow"):
        line = head.decode(sniffed.encoding if sniffed.compression is None else "latin-1", errors="replace")
        raise DataError(
            f"{path}: named '{suffix}' but it is {sniffed.what}, not {claimed} "
            f"(it starts {clip(repr(line.splitlines()[0] if line.strip() else line), 60)})",
            hint="rename it to .csv, or set data.format: csv",
        )
    if sniffed.format == "csv" and sniffed.compression is None and claimed is None:
        raise DataError(
            f"{path}: cannot tell the format from the extension '{clip(suffix, 40)}'",
            hint="use a .csv, .parquet or .arrow file, or set data.format: csv|parquet",
        )
    return str(sniffed.format)


def _read_arrow(fs, inner: str, head: bytes):  # -> pa.Table
    """Arrow IPC: the file format (Feather v2 is the same), Feather v1, or the stream format."""
    import pyarrow as pa
    import pyarrow.feather as feather

    with fs.open_input_file(inner) as handle:
        if head.startswith(b"\xff\xff\xff\xff"):
            return pa.ipc.open_stream(handle).read_all()
        return feather.read_table(handle)


def _read_csv(fs, inner: str, path: str, data: DataConfig, sniffed: Sniffed):  # -> pa.Table
    """CSV text in any codec and encoding the sniffer found, with its own delimiter."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with fs.open_input_stream(inner, compression=sniffed.compression) as stream:
        start = stream.read(1 << 16).decode(sniffed.encoding, errors="replace").lstrip("\ufeff")
    delimiter = "\t" if inner.lower().endswith((".tsv", ".tsv.gz")) else sniff_delimiter(start.split("\n", 1)[0])
    # Timestamps are read as strings so that mixed time zones can be detected and reported.
    convert = pacsv.ConvertOptions(column_types={data.time_col: pa.string()})
    read = pacsv.ReadOptions(encoding=sniffed.encoding.removesuffix("-le").removesuffix("-be")
                             if sniffed.encoding.startswith("utf-32") else sniffed.encoding)
    with fs.open_input_stream(inner, compression=sniffed.compression) as stream:
        table = pacsv.read_csv(stream, read_options=read, parse_options=pacsv.ParseOptions(delimiter=delimiter),
                               convert_options=convert)
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            _refuse_non_utf8(path, name, column)
    return table


def _refuse_non_utf8(path: str, name: str, column) -> None:
    """pyarrow keeps a column with invalid UTF-8 as bytes: name the first such cell."""
    for row, cell in enumerate(column.to_pylist()):
        try:
            (cell or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}: column '{clip(name, 60)}' row {row + 1}: not UTF-8 text "
                f"(byte 0x{exc.object[exc.start]:02x} in {clip(repr(cell), 60)})",
                hint="save the file as UTF-8 (Excel: Save As > CSV UTF-8), or re-encode it: "
                "iconv -f latin1 -t utf-8 in.csv > out.csv",
            ) from None


def _clean_columns(table, path: str):  # -> pa.Table
    """Names stripped of spaces; Excel's trailing empty unnamed columns dropped; duplicates refused."""
    names = [str(n).strip() for n in table.column_names]
    keep = []
    for i, (name, column) in enumerate(zip(names, table.columns, strict=True)):
        if name == "":
            if column.null_count == len(column) or all(str(v).strip() == "" for v in column.to_pylist() if v is not None):
                continue  # an empty column without a header: Excel's trailing separators
            raise DataError(
                f"{path}: column {i + 1} has values but no name in the header",
                hint="give every column a header name, or delete the column",
            )
        keep.append(i)
    table = table.select(keep).rename_columns([names[i] for i in keep])
    seen: dict[str, int] = {}
    for position, name in enumerate(table.column_names, start=1):
        if name in seen:
            raise DataError(
                f"{path}: column name '{clip(name, 60)}' appears twice (columns {seen[name]} and {position})",
                hint="rename or delete one of them: tsdl cannot tell which one is meant",
            )
        seen[name] = position
    return table


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
            return _as_ns(series.dt.tz_convert("UTC").dt.tz_localize(None), series, path, col), (
                len(series), 0, [str(series.dt.tz)])
        return _as_ns(series, series, path, col), (0, len(series), [])
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
    return _as_ns(parsed, text, path, col), (n_aware, len(text) - n_aware, offsets)


def _as_ns(parsed: pd.Series, shown: pd.Series, path: str, col: str) -> np.ndarray:
    """datetime64[ns], the checklist's unit, refusing what it cannot hold (the cast wraps silently).

    pandas parses 9999-12-31 or 0001-01-01 into a coarser unit; cast to ns it became another date.
    """
    if getattr(parsed.dt, "tz", None) is not None:  # zone names ('... UTC', '... CET') parse aware
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    with np.errstate(over="ignore"):
        outside = ((parsed < pd.Timestamp.min) | (parsed > pd.Timestamp.max)).to_numpy(bool)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DataError(
            f"{path}: column '{clip(col, 60)}' row {row + 1}: timestamp {clip(shown.iloc[row], 60)!r} is "
            f"outside the range tsdl can represent ({pd.Timestamp.min:%Y-%m-%d %H:%M} to {pd.Timestamp.max:%Y-%m-%d %H:%M}; "
            f"{int(outside.sum())} such values)",
            hint="remove placeholder dates such as 9999-12-31 or 0001-01-01 (or fix the year)",
        )
    return parsed.to_numpy("datetime64[ns]")


_SLASHED = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-]\d{4}\b")


def _day_first(text: pd.Series, path: str, col: str) -> bool | None:
    """For dates like 03/04/2024: True (day first) or False (month first), decided by the file.

    pandas' "mixed" parsing decides per value, so 13/01 and 01/02 in one file became the 13th of
    January and the 2nd of January: silently reordered rows. A file with no day above 12 is refused.
    """
    parts = text.str.extract(_SLASHED)
    if parts.isna().any(axis=None):
        return None
    first, second = parts[0].astype(int), parts[1].astype(int)
    if (first > 12).any() and not (second > 12).any():
        return True
    if (second > 12).any() and not (first > 12).any():
        return False
    row = int(np.flatnonzero(((first <= 12) & (second <= 12)).to_numpy())[0]) if not (first > 12).any() else 0
    raise DataError(
        f"{path}: column '{clip(col, 60)}' row {row + 1}: {clip(repr(text.iloc[row]), 40)} could be day/month or "
        "month/day, and the file does not tell which",
        hint="write ISO 8601 timestamps like 2024-01-31 13:00:00",
    )


def _to_datetime(text: pd.Series, path: str, col: str, *, utc: bool) -> pd.Series:
    day_first = _day_first(text, path, col)
    if day_first is not None:
        fmt = "%d/%m/%Y" if day_first else "%m/%d/%Y"
        sep = text.str.extract(r"^\d{1,2}([/.-])", expand=False).iloc[0]
        rest = text.str.replace(_SLASHED, "", regex=True).str.strip()
        fmt = fmt.replace("/", sep) + (" %H:%M:%S" if (rest.str.count(":") == 2).all() else " %H:%M" if (rest != "").all() else "")
        parsed = pd.to_datetime(text, format=fmt, utc=utc, errors="coerce")
        if not parsed.isna().any():
            return parsed
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
            f"{path}: column '{clip(col, 60)}' row {row + 1}: cannot parse {clip(repr(text.iloc[row]), 80)} as a timestamp "
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
        value = values.iloc[row]
        hint = f"make '{clip(col, 60)}' numeric (empty cells are read as missing) or drop it from the config"
        if isinstance(value, str) and _DECIMAL_COMMA.match(value):
            hint = ("the file writes decimal commas: export it with '.' decimals, or convert it: "
                    "pandas.read_csv(f, sep=';', decimal=',').to_csv(out, index=False)")
        raise DataError(
            f"{path}: {what} column '{clip(col, 60)}' row {row + 1}: non-numeric value {clip(repr(value), 80)} "
            f"({int(bad.sum())} such values)",
            hint=hint,
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
    shown = ", ".join(repr(clip(str(c), 40)) for c in columns[:limit])
    return shown + (f", ... ({len(columns)} in all)" if len(columns) > limit else "")
