"""Every value survives the train-only scaling and the float32 cast, or the checklist names it.

Before, a value of 1e308 passed `check-data` (exit 0): the standard scaler's spread overflowed,
silently became 1.0, and the float32 cast made the value -inf/inf in training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tsdl.data import SeriesScalers, prepare_data, prepare_inference, run_checklist
from tsdl.data.scalers import fit_stats
from tsdl.errors import DataError

from .conftest import long_frame, make_config

_SMALL = {"input_chunk_length": 8, "output_chunk_length": 4}


def _row(path: Path, **data) -> tuple[str, str]:
    report = run_checklist(make_config(path=str(path), **_SMALL, **data))
    row = next(r for r in report.rows if r.name == "value_range")
    return row.status, row.detail


@pytest.mark.parametrize(
    ("value", "scaler", "fragment"),
    [
        (1e308, "standard", "value 1e+308 gives the standard scaler a spread of"),
        (-1e308, "robust", "value -1e+308 scales to -6.69e+307 (robust scaler)"),  # IQR ignores it
        (1e308, "minmax", "value 1e+308 gives the minmax scaler a spread of"),
        (1e39, "none", "value 1e+39 scales to 1e+39 (none scaler), beyond float32's 3.4e+38"),
    ],
)
def test_a_value_beyond_float32_after_scaling_fails_naming_series_time_and_value(
    write_csv, value: float, scaler: str, fragment: str
) -> None:
    frame = long_frame(2, 60)
    frame.loc[70, "y"] = value  # series s1, 10:00
    status, text = _row(write_csv(frame), scaler=scaler)
    assert status == "fail" and "column 'y' in series 's1' at 2024-01-01 10:00:00: " + fragment in text
    assert "remove placeholder values such as 1e308" in text


def test_a_value_outside_the_train_range_is_checked_in_val_and_test_too(write_csv) -> None:
    frame = long_frame(1, 60)
    frame.loc[59, "y"] = 1e37  # the last (test) row; train spread ~0.7 -> scaled ~1.4e37 fits...
    assert _row(write_csv(frame, "ok.csv"))[0] == "pass"
    frame.loc[59, "y"] = 1e39  # ...but 1e39 / 0.7 does not
    status, text = _row(write_csv(frame, "bad.csv"))
    assert status == "fail" and "at 2024-01-03 11:00:00: value 1e+39 scales to" in text


def test_subnormal_values_fail_with_a_rescale_fix(write_csv) -> None:
    frame = long_frame(1, 60)
    frame["y"] *= 1e-310
    status, text = _row(write_csv(frame))
    assert status == "fail" and "below float32's smallest normal" in text and "multiply it by 1e30" in text


def test_a_wide_files_value_is_named_by_its_column(write_csv) -> None:
    frame = long_frame(2, 60).pivot(index="ds", columns="unique_id", values="y").reset_index()
    frame.loc[5, "s1"] = 1e308
    status, text = _row(write_csv(frame), series_cols="all")
    assert status == "fail" and text.startswith("column 's1' in series 's1' at 2024-01-01 05:00:00: value 1e+308")


def test_the_standard_spread_of_large_values_does_not_overflow() -> None:
    values = np.array([1e300, -1e300, 5e299, 0.0])
    center, scale = fit_stats(values, "standard")
    assert np.isclose(center, np.mean(values / 1e300) * 1e300) and np.isclose(scale, np.std(values / 1e300) * 1e300)
    assert fit_stats(np.array([1e308, -1e308]), "minmax")[1] == np.inf  # overflow is kept, never 1.0
    assert fit_stats(np.array([3.0, 3.0]), "standard") == (3.0, 1.0)  # a constant series


def test_stored_scalers_refuse_a_value_they_cannot_scale(write_csv) -> None:
    frame = long_frame(2, 60)
    prepared = prepare_data(make_config(path=str(write_csv(frame, "train.csv")), **_SMALL))
    frame.loc[70, "y"] = 1e39
    config = make_config(path=str(write_csv(frame, "new.csv")), **_SMALL)
    with pytest.raises(DataError, match=r"column 'y' in series 's1' at 2024-01-01 10:00:00: value 1e\+39 scales"):
        prepare_data(config, fit_scalers=False, scaler_state=prepared.scalers.state_dict())
    tail = frame.groupby("unique_id").tail(8)
    tail.loc[tail.index[-1], "y"] = 1e39
    with pytest.raises(DataError, match=r"series 's1' at 2024-01-03 11:00:00: value 1e\+39 scales") as info:
        prepare_inference(config, write_csv(tail, "predict.csv"), prepared.scalers.state_dict())
    assert info.value.hint and "\n" not in info.value.one_line()
    assert isinstance(SeriesScalers.from_state(prepared.scalers.state_dict()), SeriesScalers)
