"""The corpus of bad files: each gives its one-line error, with the right exit code, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tsdl.cli.main import main
from tsdl.data import prepare_data
from tsdl.errors import DataError

from .conftest import make_config

BAD = Path(__file__).parent / "bad_inputs"
_SMALL = {"input_chunk_length": 8, "output_chunk_length": 4}

# file -> (extra data config, expected message fragment, CLI exit code)
CORPUS: dict[str, tuple[dict, str, int]] = {
    "empty.csv": ({}, "file is empty", 2),
    "header_only.csv": ({}, "no data rows", 2),
    "missing_target.csv": ({}, "missing target (data.target_col) column 'y'", 2),
    "non_numeric_target.csv": ({}, "column 'y' row 8: non-numeric value 'abc'", 2),
    "unparseable_dates.csv": ({}, "column 'ds' row 6: cannot parse '2024-13-45 00:00:00'", 2),
    "no_time_column.csv": ({}, "cannot detect the layout", 2),
    "table.xlsx": ({}, "cannot tell the format from the extension '.xlsx'", 2),
    "corrupt.parquet": ({}, "named '.parquet' but it is text, not parquet (it starts 'this is not parquet')", 2),
    "empty_series_id.csv": ({}, "column 'unique_id' row 7: empty series id", 2),
    "empty_timestamp.csv": ({}, "column 'ds' row 3: empty timestamp", 2),
    "nan_target.csv": ({}, "missing_values: NaN/inf values in column 'y': 2 (first: column 'y', series 's0', 2024-01-01 03:00:00)", 1),
    "inf_covariate.csv": ({"covariates": {"past": ["temp"]}}, "missing_values: NaN/inf values in column 'temp': 1 (first: column 'temp', series 's0', 2024-01-01 11:00:00)", 1),
    "duplicate_timestamps.csv": ({}, "duplicates: 1 duplicate timestamps in 1 series (first: series 's0'", 1),
    "mixed_time_zones.csv": ({}, "time_zones: mixed time zones: 60 timestamps with an offset", 1),
    "misaligned_grid.csv": ({}, "grid_alignment: 1 series off the common 'h' grid (s1)", 1),
    "mixed_frequencies.csv": ({}, "frequency: series have different frequencies", 1),
    "large_gaps.csv": ({}, "gaps: 10 missing grid points in 1 series (worst: 's0' 16.7%)", 1),
    "short_series.csv": ({"short_series": "fail"}, "short_series: 1 series shorter than input+output = 12 points (tiny)", 1),
    "target_copy_covariate.csv": ({"covariates": {"past": ["y_copy"]}}, "leakage: 'y_copy' ~ the target (corr +1.000)", 1),
    "future_target_covariate.csv": ({"covariates": {"future": ["next_y"]}}, "'next_y' is a copy of the target 1 step(s) ahead", 1),
    "past_declared_future.csv": ({"covariates": {"future": ["lag_y"]}}, "known-future 'lag_y' ~ the target 2 step(s) back", 1),
    # Written to break the readers (issue 23): files that are not what their name says, exports
    # from other tools, encodings, values and timestamps at the edge of what the dtypes hold.
    "excel_workbook_named.csv": ({}, "excel_workbook_named.csv: is an Excel workbook (.xlsx) (fix: export the sheet as CSV", 2),
    "excel_97_named.csv": ({}, "is an Excel 97-2003 workbook (.xls)", 2),
    "binary_junk.csv": ({}, "binary_junk.csv: not UTF-8 text, Parquet or Arrow (binary; it starts with b'", 2),
    "truncated.parquet": ({}, "cannot read as parquet: Could not open Parquet input source", 2),
    "duplicate_columns.csv": ({}, "column name 'y' appears twice (columns 3 and 4)", 2),
    "duplicate_columns.arrow": ({}, "column name 'ds' appears twice (columns 2 and 4)", 2),
    "blank_header_with_values.csv": ({}, "column 4 has values but no name in the header", 2),
    "latin1_series_ids.csv": ({}, "column 'unique_id' row 1: not UTF-8 text (byte 0xfc in b'Z\\xfcrich 0') (fix: save the file as UTF-8", 2),
    "placeholder_year_9999.csv": ({}, "column 'ds' row 60: timestamp '9999-12-31 00:00:00' is outside the range tsdl can represent", 2),
    "year_9999.parquet": ({}, "column 'ds' row 60: timestamp '9999-12-31 00:00:00' is outside the range tsdl can represent", 2),
    "year_1600.csv": ({}, "column 'ds' row 1: timestamp '1600-01-01 00:00:00' is outside the range", 2),
    "ambiguous_day_month.csv": ({}, "row 1: '01/01/2024' could be day/month or month/day", 2),
    "decimal_comma.csv": ({}, "target column 'y' row 1: non-numeric value '10,030472' (120 such values) (fix: the file writes decimal commas", 2),
    "excel_error_value.csv": ({}, "target column 'y' row 8: non-numeric value '#DIV/0!'", 2),
    "huge_cell.csv": ({}, "target column 'y' row 8: non-numeric value 'xxxxxxxxxx", 2),
    "huge_column_name.csv": ({}, "missing target (data.target_col) column 'y'; columns are 'unique_id', 'ds', 'cccccc", 2),
    "only_blank_lines.csv": ({}, "no header and no rows (only blank lines)", 2),
    "value_1e308.csv": ({}, "value_range: column 'y' in series 's1' at 2024-01-01 10:00:00: value 1e+308 gives the standard scaler a spread", 1),
    "subnormal_values.csv": ({}, "value_range: column 'y' in series 's0' at 2024-01-01 00:00:00: value 1", 1),
    "float32_overflow.csv": ({"scaler": "none"}, "value_range: column 'y' in series 's1' at 2024-01-01 10:00:00: value 1e+39 scales to 1e+39", 1),
    "stray_timestamp.csv": ({}, "gaps: the timestamps run from 2024-01-01 00:00:00 to 2099-12-31 00:00:00: 39,971,521 'min' grid points for 60 rows", 1),
    "wide_nan_in_one_column.csv": ({"series_cols": ["s0", "s1"]}, "missing_values: NaN/inf values in column 's1': 1 (first: column 's1', 2024-01-01 05:00:00)", 1),
    "dst_repeated_hour.csv": ({}, "duplicates: 1 duplicate timestamps in 1 series (first: series 's0' at 2024-10-27 02:00:00)", 1),
    "shell_chars_in_ids.csv": ({}, "missing_values: NaN/inf values in column 'y': 1 (first: column 'y', series '../../x;$(touch pwned)\\n`id`'", 1),
}

# Exports that look hostile but hold the same data as parquet_named.csv (a Parquet file under a
# .csv name, opened as Parquet): each must pass the checklist and read to exactly that data.
READABLE = [
    "parquet_named.csv",
    "feather_v2.feather",
    "excel_bom_crlf.csv",
    "excel_semicolon.csv",
    "excel_unicode_text.txt",
    "excel_trailing_empty_columns.csv",
    "header_with_spaces.csv",
    "tab_separated.tsv",
    "gzip_without_gz_extension.csv",
    "plain_text_named.csv.gz",
    "bzip2.csv.bz2",
]
# Readable, with their own data: file -> what the checklist must say about it.
READABLE_OWN = {
    "dst_offsets_berlin.csv": "time_zones: offsets +01:00, +02:00 converted to UTC",
    "timezone_names.csv": "frequency: 'h' inferred",
    "day_first_dates.csv": "frequency: 'D' inferred",
}


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted([*CORPUS, *READABLE, *READABLE_OWN])
    assert len(CORPUS) >= 45


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_file_gives_its_one_line_error(name: str) -> None:
    extra, fragment, _ = CORPUS[name]
    with pytest.raises(DataError) as info:
        prepare_data(make_config(path=str(BAD / name), **_SMALL, **extra))
    message = info.value.one_line()
    assert fragment in message
    assert "\n" not in message and name in message
    assert info.value.hint


def _check_data(name: str, extra: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """`tsdl check-data` from an empty working directory; nothing may appear there or in the corpus."""
    before = sorted(p.name for p in BAD.iterdir())
    monkeypatch.chdir(tmp_path)
    argv = ["check-data", str(BAD / name)]
    for k, v in {**_SMALL, **extra}.items():
        argv += ["--set", f"data.{k}={v}"]
    code = main(argv)
    assert list(tmp_path.iterdir()) == [] and sorted(p.name for p in BAD.iterdir()) == before
    return code


def _bounded(captured) -> None:
    text = captured.out + captured.err
    assert "Traceback" not in text and len(text) < 6000
    assert all(len(line) < 1200 for line in text.splitlines())


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_cli_exit_code_and_no_traceback(
    name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra, fragment, code = CORPUS[name]
    assert _check_data(name, extra, tmp_path, monkeypatch) == code
    captured = capsys.readouterr()
    _bounded(captured)
    if code == 2:
        lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and fragment in lines[0]
    else:
        assert fragment.split(": ", 1)[-1] in captured.out
        assert captured.out.rstrip().splitlines()[-1].startswith("checklist failed:")


def test_missing_path_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-data", str(tmp_path / "nope.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unknown_layout_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-data", str(BAD / "nan_target.csv"), "--set", "data.layout=diagonal"]) == 2
    err = capsys.readouterr().err
    assert "data.layout" in err and "diagonal" in err


def _frame(name: str):
    from tsdl.data.io import read_series_frame

    return read_series_frame(make_config(path=str(BAD / name), **_SMALL).data).frame


@pytest.mark.parametrize("name", READABLE)
def test_exports_from_other_tools_read_to_the_same_data(
    name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = pq.read_table(BAD / "parquet_named.csv").to_pandas()  # independent of tsdl's readers
    frame = _frame(name)
    assert list(frame["__id"]) == list(reference["unique_id"])
    assert list(frame["__ds"].astype(str)) == list(reference["ds"])
    np.testing.assert_array_equal(frame["__y"].to_numpy(), reference["y"].to_numpy())
    assert _check_data(name, {}, tmp_path, monkeypatch) == 0
    captured = capsys.readouterr()
    _bounded(captured)
    assert captured.out.rstrip().splitlines()[-1].startswith("checklist passed")


@pytest.mark.parametrize("name", sorted(READABLE_OWN))
def test_time_zone_and_calendar_exports_pass_with_their_own_line(
    name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _check_data(name, {}, tmp_path, monkeypatch) == 0
    out = capsys.readouterr().out
    check, detail = READABLE_OWN[name].split(": ", 1)
    assert any(line.split()[:1] == [check] and detail in line for line in out.splitlines()), out


def test_day_first_dates_are_read_day_first() -> None:
    times = _frame("day_first_dates.csv")["__ds"]
    assert times.iloc[12] == pd.Timestamp("2024-01-13") and times.iloc[31] == pd.Timestamp("2024-02-01")


def test_a_file_name_with_shell_characters_is_only_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = tmp_path / "in" / "we ird;$(touch pwned) `id` 'q'.csv"
    odd.parent.mkdir()
    shutil.copy(BAD / "value_1e308.csv", odd)
    monkeypatch.chdir(tmp_path)
    assert main(["check-data", str(odd), "--set", "data.input_chunk_length=8", "--set", "data.output_chunk_length=4"]) == 1
    out = capsys.readouterr().out
    assert str(odd) in out.splitlines()[0] and "value 1e+308" in out
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["in", odd.name]


def test_check_data_guesses_the_columns_of_a_semicolon_excel_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without a config, check-data guesses time_col and series_cols from the header: it split on
    # ',' only and kept Excel's BOM, so an Excel "CSV UTF-8" export with ';' had no time column.
    days = pd.date_range("2024-01-01", periods=60, freq="D")
    wide = pd.DataFrame({"date": days, "a": np.arange(60.0), "b": np.sin(np.arange(60.0))})
    path = tmp_path / "export.csv"
    path.write_text(wide.to_csv(index=False, sep=";"), encoding="utf-8-sig")
    assert main(["check-data", str(path), "--set", "data.input_chunk_length=8", "--set", "data.output_chunk_length=4"]) == 0
    assert "'D' inferred for all 2 series" in capsys.readouterr().out
