"""A small synthetic config that trains in seconds on 2 CPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import config_with
from tsdl.config import TsdlConfig


def small_config(tmp_path: Path, **overrides) -> TsdlConfig:
    raw = {
        "experiment": {"name": "unit"},
        "data": {
            "synthetic": {"n_series": 4, "n_timesteps": 360, "seed": 1},
            "input_chunk_length": 48,
            "output_chunk_length": 12,
            "stride": 2,
        },
        "model": {"name": "dlinear"},
        "training": {"max_epochs": 3, "batch_size": 32, "limit_train_batches": 8, "seed": 7},
        "resources": {"num_workers": 1, "storage_path": str(tmp_path / "results"), "max_failures": 0},
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    return config_with(raw, **overrides)


@pytest.fixture
def make_config(tmp_path: Path):
    return lambda **overrides: small_config(tmp_path, **overrides)
