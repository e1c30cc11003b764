"""Shared helpers: configs built from keyword overrides and small long-format files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tsdl.config import TsdlConfig, parse_config

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT / ".." / "shared"
ETTH1 = SHARED / "data" / "ETTh1.csv"


def make_config(**data: Any) -> TsdlConfig:
    """A validated config whose data section is the defaults updated with ``data``."""
    return parse_config({"data": data})


def long_frame(
    n_series: int = 3, n_steps: int = 200, *, freq: str = "h", seed: int = 0, start: str = "2024-01-01"
) -> pd.DataFrame:
    """Seasonal series of different levels in long format (unique_id, ds, y)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=n_steps, freq=freq)
    frames = []
    for i in range(n_series):
        level = 10.0 * (i + 1)
        y = level + np.sin(np.arange(n_steps) * 2 * np.pi / 24) + rng.normal(0, 0.1, n_steps)
        frames.append(pd.DataFrame({"unique_id": f"s{i}", "ds": times, "y": y}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[pd.DataFrame, str], Path]:
    def _write(frame: pd.DataFrame, name: str = "data.csv") -> Path:
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return path

    return _write
