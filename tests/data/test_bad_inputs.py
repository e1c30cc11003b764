"""The corpus of bad files: each gives its one-line error, with the right exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

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
}


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in BAD.iterdir()) == sorted(CORPUS)
    assert len(CORPUS) >= 15


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_file_gives_its_one_line_error(name: str) -> None:
    extra, fragment, _ = CORPUS[name]
    with pytest.raises(DataError) as info:
        prepare_data(make_config(path=str(BAD / name), **_SMALL, **extra))
    message = info.value.one_line()
    assert fragment in message
    assert "\n" not in message and name in message
    assert info.value.hint


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_cli_exit_code_and_no_traceback(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    extra, fragment, code = CORPUS[name]
    sets = [f"data.{k}={v}" for k, v in {**_SMALL, **extra}.items()]
    argv = ["check-data", str(BAD / name)]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
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
