"""The rows of a predict input that carry known-future covariates over the forecast horizon.

A model trained with ``data.covariates.future`` needs those columns' values for the ``H`` steps it
forecasts. They travel in the same file as the history, in the same layout and columns: after each
series' last target value come exactly ``H`` rows with the next timestamps, the target empty and
every known-future covariate filled (NeuralForecast's ``futr_df``, appended to the history). The
history goes through the training checklist as before; these rows are checked here, strictly,
because a guessed or filled future value would silently change the forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from tsdl.data.frame import ID_COL, TARGET_COL, TIME_COL, SeriesFrame
from tsdl.errors import DataError

__all__ = ["future_values", "split_future_rows"]


def split_future_rows(sf: SeriesFrame, horizon: int, columns: Sequence[str]) -> tuple[SeriesFrame, pd.DataFrame]:
    """``(history, future)``: each series' trailing rows without a target are its future rows.

    Args:
        horizon: ``H``, the future rows every series must end with.
        columns: the known-future covariates (for the messages).

    Raises:
        DataError: a series without a target value, or one that does not end with exactly
            ``H`` target-less rows (no rows are dropped or guessed).
    """
    df = sf.frame
    order = pd.factorize(df[ID_COL])[0]  # series in file order, rows by time within each
    df = df.assign(_series=order).sort_values(["_series", TIME_COL], kind="stable").drop(columns="_series")
    df = df.reset_index(drop=True)
    ids = df[ID_COL].to_numpy()
    series = pd.factorize(ids)[0]
    step = df.groupby(series, sort=False).cumcount().to_numpy()
    observed = ~np.isnan(df[TARGET_COL].to_numpy(np.float64))  # inf is a value: the checklist reports it
    lengths = np.bincount(series)
    last = np.full(len(lengths), -1)
    np.maximum.at(last, series[observed], step[observed])
    names = ids[np.cumsum(lengths) - lengths]
    _check_trailing(sf, names, lengths, last, horizon, columns)
    is_future = step > last[series]
    history = replace(sf, frame=df.loc[~is_future].reset_index(drop=True))
    return history, df.loc[is_future].reset_index(drop=True)


def _check_trailing(
    sf: SeriesFrame,
    names: np.ndarray,
    lengths: np.ndarray,
    last: np.ndarray,
    horizon: int,
    columns: Sequence[str],
) -> None:
    trailing = lengths - 1 - last
    cols = ", ".join(f"'{c}'" for c in columns)
    empty = np.flatnonzero(last < 0)
    if len(empty):
        i = int(empty[0])
        raise DataError(
            f"{sf.source}: series '{names[i]}' has no target value in any of its {int(lengths[i])} rows "
            f"({len(empty)} such series), so there is no history to forecast from",
            hint="give every series at least data.input_chunk_length rows of history before its future rows",
        )
    wrong = np.flatnonzero(trailing != horizon)
    if len(wrong):
        i = int(wrong[0])
        raise DataError(
            f"{sf.source}: the model uses known-future covariates ({cols}) over H={horizon} steps, but "
            f"series '{names[i]}' has {int(trailing[i])} rows after its last target value "
            f"({len(wrong)} of {len(lengths)} series need {horizon})",
            hint=f"end every series with exactly {horizon} rows: the next timestamps, the target empty "
            f"and the future values of {cols}",
        )


def future_values(
    future: pd.DataFrame,
    series_ids: np.ndarray,
    last_times: np.ndarray,
    expected_times: np.ndarray,
    columns: Sequence[str],
    *,
    source: str,
    freq: str,
) -> np.ndarray:
    """``[N, H, F]`` raw values of the known-future ``columns`` for ``series_ids`` in order.

    Args:
        future: the future rows from :func:`split_future_rows` (``H`` per series).
        series_ids: ``[N]`` the checked history's series, in its order.
        last_times: ``[N]`` int64 ns: each series' last history row.
        expected_times: ``[N, H]`` int64 ns: the grid steps after each series' last history row.

    Raises:
        DataError: a future timestamp off that grid, or an empty / non-finite future value.
    """
    n, h = expected_times.shape
    position = pd.Index(series_ids).get_indexer(future[ID_COL].to_numpy())
    rows = future.assign(_series=position).sort_values(["_series", TIME_COL], kind="stable")
    times = rows[TIME_COL].to_numpy("datetime64[ns]").view(np.int64).reshape(n, h)
    off = np.argwhere(times != expected_times)
    if len(off):
        i, j = (int(k) for k in off[0])
        raise DataError(
            f"{source}: series '{series_ids[i]}' future row {j + 1} of {h} is at {_ts(times[i, j])}, "
            f"expected {_ts(expected_times[i, j])} (the '{freq}' grid after the last history row "
            f"{_ts(last_times[i])})",
            hint=f"give the {h} future rows the next {h} timestamps on the series' '{freq}' grid, "
            "one row per step, no gaps or duplicates",
        )
    values = np.stack([rows[c].to_numpy(np.float64) for c in columns], axis=-1).reshape(n, h, len(columns))
    for k, col in enumerate(columns):
        bad = ~np.isfinite(values[:, :, k])
        if bad.any():
            i, j = (int(x) for x in np.argwhere(bad)[0])
            raise DataError(
                f"{source}: series '{series_ids[i]}' known-future covariate '{col}' is empty or not finite "
                f"in {int(bad[i].sum())} of its {h} future rows (first at {_ts(times[i, j])}; "
                f"{int(bad.any(axis=1).sum())} series affected)",
                hint=f"fill '{col}' in every future row with its planned value (future rows are not "
                "filled by data.missing)",
            )
    return values


def _ts(ns: int) -> str:
    return str(pd.Timestamp(int(ns)))
