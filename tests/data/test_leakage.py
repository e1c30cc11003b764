"""The leakage audit decides over all shifts, so a smooth or trending target cannot hide a copy.

Before, the scan walked shifts from -max_shift upward and stopped at the first |corr| over the
threshold. Any smooth target correlates >= 0.99 with its own lags, so an exact copy of it looked
like "a lag": unused, it passed; declared past, it only warned; a declared known-future copy of
the next step was told to move to data.covariates.past, which is itself a leak. Wide files with
several series columns were not scanned at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdl.data.leakage import SeriesValues, scan_column
from tsdl.data.prepare import run_checklist

from .conftest import make_config

_SMALL = {"input_chunk_length": 8, "output_chunk_length": 4}
_N = 400


def _target(kind: str, rng: np.random.Generator, i: int) -> np.ndarray:
    t = np.arange(_N, dtype=np.float64)
    if kind == "smooth":  # 15-minute daily cycle, tiny noise: lag-1..3 autocorrelation > 0.99
        return 5 * np.sin(2 * np.pi * t / 96 + i) + rng.normal(0, 0.05, _N)
    if kind == "trending":
        return 0.5 * t + 10 * i + rng.normal(0, 1.0, _N)
    if kind == "noisy":
        return 10.0 * (i + 1) + rng.normal(0, 1.0, _N)
    return 10.0 * (i + 1) + np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, _N)  # seasonal


def _file(tmp_path: Path, kind: str, **columns) -> Path:
    """Two series of ``kind``; each extra column is ``f(y, rng)`` computed per series."""
    rng = np.random.default_rng(3)
    frames = []
    for i in range(2):
        y = pd.Series(_target(kind, rng, i))
        frame = pd.DataFrame({"unique_id": f"s{i}", "ds": pd.date_range("2024-01-01", periods=_N, freq="15min"), "y": y})
        for name, make in columns.items():
            frame[name] = make(y, rng)
        frames.append(frame)
    path = tmp_path / f"{kind}.csv"
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


def _leakage(path: Path, **data) -> tuple[str, str]:
    report = run_checklist(make_config(path=str(path), missing="ffill", **_SMALL, **data))
    row = next(r for r in report.rows if r.name == "leakage")
    return row.status, row.detail


KINDS = ["smooth", "trending", "noisy", "seasonal"]
COPY = {"y_copy": lambda y, rng: y, "y_next": lambda y, rng: y.shift(-1)}


@pytest.mark.parametrize("kind", KINDS)
def test_an_unused_exact_copy_fails_whatever_the_target(tmp_path: Path, kind: str) -> None:
    status, text = _leakage(_file(tmp_path, kind, **COPY))
    assert status == "fail"
    assert "'y_copy' (not in data.covariates) is a copy of the target (corr +1.000)" in text
    assert "'y_next' (not in data.covariates) is a copy of the target 1 step(s) ahead" in text


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("column", ["y_copy", "y_next"])
def test_a_declared_past_copy_at_shift_0_or_ahead_fails(tmp_path: Path, kind: str, column: str) -> None:
    status, text = _leakage(_file(tmp_path, kind, **COPY), covariates={"past": [column]})
    assert status == "fail"
    assert f"'{column}' is a copy of the target" in text
    assert "remove copies of the target from data.covariates" in text


@pytest.mark.parametrize("kind", KINDS)
def test_a_declared_future_copy_of_the_next_step_is_not_sent_to_past(tmp_path: Path, kind: str) -> None:
    status, text = _leakage(_file(tmp_path, kind, **COPY), covariates={"future": ["y_next"]})
    assert status == "fail" and "'y_next' is a copy of the target 1 step(s) ahead" in text
    assert "covariates.past" not in text


@pytest.mark.parametrize("kind", KINDS)
def test_an_unrelated_column_passes_and_the_worst_match_is_shown(tmp_path: Path, kind: str) -> None:
    # For the trending target, an unrelated trend: the level correlation of two trends is ~1.
    other = {"other": lambda y, rng: 0.3 * np.arange(len(y)) + rng.normal(0, 1.0, len(y))}
    status, text = _leakage(_file(tmp_path, kind, **other), covariates={"past": ["other"]})
    assert status == "pass", text
    worst = float(text.split("worst ")[1].split(":")[0])
    assert worst < 0.5 and "at shifts +-3" in text


LAGS = {"lag_y": lambda y, rng: y.shift(2)}


@pytest.mark.parametrize(
    ("covariates", "status", "fragment"),
    [
        ({}, "pass", "0 covariates, 1 unused columns"),
        ({"past": ["lag_y"]}, "warn", "past 'lag_y' ~ the target 2 step(s) back (corr +1.000)"),
        ({"future": ["lag_y"]}, "fail", "known-future 'lag_y' ~ the target 2 step(s) back (corr +1.000): "
         "it is past-only; move it to data.covariates.past"),
    ],
)
def test_a_genuine_lag_of_a_noisy_target_is_judged_as_before(
    tmp_path: Path, covariates: dict, status: str, fragment: str
) -> None:
    assert _leakage(_file(tmp_path, "noisy", **LAGS), covariates=covariates)[0] == status
    assert fragment in _leakage(_file(tmp_path, "noisy", **LAGS), covariates=covariates)[1]


def test_a_noisy_copy_of_the_next_step_fails_at_its_shift(tmp_path: Path) -> None:
    near = {"y_next": lambda y, rng: 2 * y.shift(-1) + 1 + rng.normal(0, 0.01, len(y))}
    status, text = _leakage(_file(tmp_path, "smooth", **near))
    assert status == "fail" and "'y_next' (not in data.covariates) ~ the target 1 step(s) ahead" in text


def test_every_series_column_of_a_wide_file_is_scanned(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = 5 * np.sin(np.arange(_N) * 2 * np.pi / 96) + rng.normal(0, 0.05, _N)
    wide = pd.DataFrame({
        "ds": pd.date_range("2024-01-01", periods=_N, freq="15min"),
        "a": a,
        "b": rng.normal(size=_N),
        "a_next": pd.Series(a).shift(-1),
        "noise": rng.normal(size=_N),
    })
    path = tmp_path / "wide.csv"
    wide.to_csv(path, index=False)
    status, text = _leakage(path, series_cols=["a", "b"])
    assert status == "fail"
    assert "'a_next' (not in data.covariates) is a copy of the target 1 step(s) ahead in series 'a'" in text
    assert "noise" not in text
    status, text = _leakage(path, series_cols=["a", "b"], checks={"skip_columns": ["a_next"]})
    assert status == "pass" and text.startswith("0 covariates, 1 unused columns:")


def test_a_copy_in_one_series_of_many_is_found_and_named() -> None:
    rng = np.random.default_rng(1)
    sid = np.repeat(np.arange(50), 100)
    y = rng.normal(size=len(sid))
    x = rng.normal(size=len(sid))
    x[sid == 17] = y[sid == 17]
    found = scan_column(x, SeriesValues(y, sid, np.asarray([f"s{i}" for i in range(50)], object)), 3, 0.99)
    assert found is not None and found.exact and found.shift == 0 and found.series == "s17"


def test_values_near_the_float64_limit_do_not_overflow_the_scan() -> None:
    sid = np.repeat(np.arange(2), 60)
    y = np.random.default_rng(0).normal(size=len(sid)) * 1e307
    with np.errstate(all="raise"):
        found = scan_column(y.copy(), SeriesValues(y, sid, np.asarray(["a", "b"], object)), 3, 0.99)
    assert found is not None and found.exact and found.shift == 0
