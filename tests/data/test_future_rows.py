"""Predict inputs for models with known-future covariates: the H rows that end each series carry
the covariates' future values, scaled like training; every malformed file is a one-line error."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from tsdl.data import prepare_data, prepare_inference
from tsdl.errors import DataError

from .conftest import long_frame, make_config

L, H, N_STEPS, N_HISTORY = 12, 6, 100, 88
_COVARIATES = {"future": ["promo"], "calendar": ["hour"]}


def _frame() -> pd.DataFrame:
    frame = long_frame(2, N_STEPS)
    frame["promo"] = np.random.default_rng(1).normal(size=len(frame))
    return frame


def _predict_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Each series' first N_HISTORY rows, then H rows with the target blanked."""
    step = frame.groupby("unique_id").cumcount()
    out = frame[step < N_HISTORY + H].copy()
    out.loc[step[step < N_HISTORY + H] >= N_HISTORY, "y"] = np.nan
    return out


@pytest.fixture
def trained(write_csv):
    """``(config, scaler_state)`` of a run trained on ``_frame()``."""
    config = make_config(
        path=str(write_csv(_frame(), "train.csv")), covariates=_COVARIATES, input_chunk_length=L, output_chunk_length=H
    )
    return config, prepare_data(config)


def test_future_rows_are_scaled_exactly_like_the_training_windows(write_csv, trained) -> None:
    config, prepared = trained
    frame = _frame()
    windows = prepare_inference(config, write_csv(_predict_input(frame), "in.csv"), prepared.scalers.state_dict())
    assert len(windows) == 2 and windows.n_future == len(prepared.feature_names["future"]) == 2
    start = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=N_HISTORY)
    np.testing.assert_array_equal(
        windows.horizon_times(np.arange(2)), np.stack([pd.date_range(start, periods=H, freq="h")] * 2)
    )
    # The test window of training with the same forecast origin sees the very same inputs.
    test = prepared.windows("test")
    index = test.series_index()
    for i, uid in enumerate(["s0", "s1"]):
        w = int(index[(index.unique_id == uid) & (index.forecast_start == start)].window.iloc[0])
        reference, got = test.batch_at(np.array([w])), windows.batch_at(np.array([i]))
        np.testing.assert_allclose(got.past.numpy()[0], reference.past.numpy()[0], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got.future.numpy()[0], reference.future.numpy()[0], rtol=1e-6, atol=1e-6)
    promo = frame[frame.unique_id == "s1"].promo.to_numpy()[N_HISTORY : N_HISTORY + H]
    np.testing.assert_allclose(
        windows.batch_at(np.array([1])).future.numpy()[0, :, 0] * prepared.scalers.scale[1, 1]
        + prepared.scalers.center[1, 1],
        promo,
        rtol=1e-5,
    )


def test_wide_files_carry_the_future_rows_too(write_csv) -> None:
    frame = _frame()
    wide = frame.pivot(index="ds", columns="unique_id", values="y").reset_index()
    wide["promo"] = frame[frame.unique_id == "s0"].promo.to_numpy()
    covariates = {"future": ["promo"]}
    config = make_config(
        path=str(write_csv(wide, "wide.csv")), series_cols=["s0", "s1"], covariates=covariates,
        input_chunk_length=L, output_chunk_length=H,
    )
    prepared = prepare_data(config)
    future = wide.iloc[: N_HISTORY + H].copy()
    future.loc[N_HISTORY:, ["s0", "s1"]] = np.nan
    windows = prepare_inference(config, write_csv(future, "in.csv"), prepared.scalers.state_dict())
    got = windows.batch_at(np.arange(2)).future.numpy()[:, :, 0]
    expected = (wide.promo.to_numpy()[N_HISTORY : N_HISTORY + H] - prepared.scalers.center[:, 1:2]) / (
        prepared.scalers.scale[:, 1:2]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def _rows(frame: pd.DataFrame, uid: str) -> pd.Index:
    return frame.index[frame.unique_id == uid]


def _history_only(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame.groupby("unique_id").cumcount() < N_HISTORY]


def _two_rows_short(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(index=_rows(frame, "s1")[-2:])


def _one_row_too_many(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[_rows(frame, "s1")[N_HISTORY - 1], "y"] = np.nan
    return frame


def _series_without_target(frame: pd.DataFrame) -> pd.DataFrame:
    empty = frame[frame.unique_id == "s1"].assign(unique_id="s9", y=np.nan)
    return pd.concat([frame, empty])


def _off_grid(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[_rows(frame, "s1")[N_HISTORY + 2], "ds"] += pd.Timedelta(minutes=30)
    return frame


def _one_step_late(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[_rows(frame, "s1")[N_HISTORY:], "ds"] += pd.Timedelta(hours=1)
    return frame


def _nan_future_value(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[_rows(frame, "s1")[N_HISTORY + 1], "promo"] = np.nan
    return frame


def _inf_future_value(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[_rows(frame, "s0")[-1], "promo"] = np.inf
    return frame


def _no_future_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="promo")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_history_only, ["series 's0' has 0 rows after its last target value", "(2 of 2 series need 6)",
                         "end every series with exactly 6 rows", "'promo'"]),
        (_two_rows_short, ["series 's1' has 4 rows after its last target value", "(1 of 2 series need 6)"]),
        (_one_row_too_many, ["series 's1' has 7 rows after its last target value"]),
        (_series_without_target, ["series 's9' has no target value in any of its 94 rows"]),
        (_off_grid, ["series 's1' future row 3 of 6 is at 2024-01-04 18:30:00, expected 2024-01-04 18:00:00",
                     "after the last history row 2024-01-04 15:00:00"]),
        (_one_step_late, ["series 's1' future row 1 of 6 is at 2024-01-04 17:00:00, expected 2024-01-04 16:00:00"]),
        (_nan_future_value, ["series 's1' known-future covariate 'promo' is empty or not finite in 1 of its 6",
                             "first at 2024-01-04 17:00:00", "not filled by data.missing"]),
        (_inf_future_value, ["series 's0' known-future covariate 'promo'", "first at 2024-01-04 21:00:00"]),
        (_no_future_column, ["missing covariate (data.covariates) column 'promo'"]),
    ],
)
def test_malformed_future_rows_are_one_line_errors(
    write_csv, trained, mutate: Callable[[pd.DataFrame], pd.DataFrame], expected: list[str]
) -> None:
    config, prepared = trained
    path = write_csv(mutate(_predict_input(_frame())), "in.csv")
    with pytest.raises(DataError) as info:
        prepare_inference(config, path, prepared.scalers.state_dict())
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    for part in expected:
        assert part in message
