"""A generated long-format dataset for demos and tests: daily/weekly seasonality, trend, noise."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from tsdl.config.data import SyntheticDataConfig
from tsdl.data.frame import ID_COL, TARGET_COL, TIME_COL, SeriesFrame
from tsdl.errors import DataError

__all__ = ["synthetic_frame"]

_START = pd.Timestamp("2024-01-01")


def synthetic_frame(config: SyntheticDataConfig) -> SeriesFrame:
    """Series ``series_0..`` of different levels, each ``level * (1 + seasonal + trend) + noise``.

    The seasonal periods are one day and one week in steps of ``config.freq``, so the same
    generator gives sensible data for hourly, 15-minute or daily frequencies.
    """
    try:
        step = pd.to_timedelta(pd.tseries.frequencies.to_offset(config.freq))
    except (ValueError, TypeError):
        raise DataError(
            f"data.synthetic.freq {config.freq!r} is not a fixed pandas frequency",
            hint="use e.g. 'h', '15min' or 'D'",
        ) from None
    rng = np.random.default_rng(config.seed)
    n, t = config.n_series, config.n_timesteps
    daily = max(pd.Timedelta("1D") / step, 2.0)
    weekly = max(pd.Timedelta("7D") / step, 2.0)
    steps = np.arange(t, dtype=np.float64)
    levels = rng.uniform(10.0, 100.0, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    seasonal = 0.3 * np.sin(2 * np.pi * steps / daily + phase) + 0.15 * np.sin(2 * np.pi * steps / weekly)
    trend = rng.uniform(-0.2, 0.4, size=(n, 1)) * steps / t
    noise = rng.normal(0.0, 0.05, size=(n, t))
    values = levels * (1.0 + seasonal + trend + noise)
    times = pd.date_range(_START, periods=t, freq=config.freq).to_numpy("datetime64[ns]")
    frame = pd.DataFrame(
        {
            ID_COL: np.repeat(np.asarray([f"series_{i}" for i in range(n)], dtype=object), t),
            TIME_COL: np.tile(times, n),
            TARGET_COL: values.reshape(-1),
        }
    )
    params = json.dumps({"synthetic": config.model_dump(mode="json"), "version": 1}, sort_keys=True)
    return SeriesFrame(
        frame=frame,
        source="synthetic",
        target_name="y",
        content_hash=hashlib.sha256(params.encode()).hexdigest(),
        tz_naive_rows=len(frame),
    )
