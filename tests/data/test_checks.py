"""The leakage audit scans every numeric column of the file, declared as a covariate or not.

Before, `tsdl check-data` said "leakage: pass, no covariates" for a file whose extra columns were an
exact copy of the target or the target one step ahead: only declared covariates were scanned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdl.data.prepare import run_checklist

from .conftest import long_frame, make_config

BAD = Path(__file__).parent / "bad_inputs"
_SMALL = {"input_chunk_length": 8, "output_chunk_length": 4}


def _row(path: Path, name: str, **data) -> tuple[str, str]:
    report = run_checklist(make_config(path=str(path), **_SMALL, **data))
    row = next(r for r in report.rows if r.name == name)
    return row.status, row.detail


@pytest.mark.parametrize(
    ("file", "detail"),
    [
        ("target_copy_covariate.csv", "'y_copy' (not in data.covariates) ~ the target"),
        ("future_target_covariate.csv", "'next_y' (not in data.covariates) is a copy of the target 1 step(s) ahead"),
    ],
)
def test_an_undeclared_copy_of_the_target_fails_the_audit(file: str, detail: str) -> None:
    status, text = _row(BAD / file, "leakage")
    assert status == "fail" and detail in text and "data.checks.skip_columns" in text


def test_an_exact_copy_is_named_as_such(write_csv: Callable[[pd.DataFrame, str], Path]) -> None:
    frame = long_frame()
    frame["y_again"] = frame["y"]
    status, text = _row(write_csv(frame, "copy.csv"), "leakage")
    assert status == "fail" and "'y_again' (not in data.covariates) is a copy of the target (corr +1.000)" in text


def test_a_lag_of_the_target_left_unused_is_not_leakage() -> None:
    # Declared as known-future it fails (test_bad_inputs); unused, it is a fair past feature.
    assert _row(BAD / "past_declared_future.csv", "leakage")[0] == "pass"


def test_unused_columns_are_listed_text_ones_included(write_csv: Callable[[pd.DataFrame, str], Path]) -> None:
    frame = long_frame()
    frame["noise"] = np.random.default_rng(1).normal(size=len(frame))
    frame["note"] = "ok"
    path = write_csv(frame, "extra.csv")
    status, text = _row(path, "leakage")
    assert status == "pass" and text.startswith("0 covariates, 1 unused columns: |corr| of step changes < 0.99 at shifts +-3; worst 0.")
    status, text = _row(path, "unused_columns")
    assert status == "pass" and "2 column(s) not in the config, ignored by training: 'noise', 'note'" in text
    status, text = _row(path, "unused_columns", covariates={"past": ["noise"]})
    assert "1 column(s)" in text and "'note'" in text and "'noise'" not in text


def test_known_copies_can_be_left_out_of_the_scan() -> None:
    status, _ = _row(BAD / "target_copy_covariate.csv", "leakage", checks={"skip_columns": ["y_copy"]})
    assert status == "pass"
