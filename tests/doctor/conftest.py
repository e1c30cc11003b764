"""Small synthetic configs that prepare and train in seconds on 2 CPUs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import config_with
from tsdl.config import TsdlConfig


def doctor_config(**overrides: Any) -> TsdlConfig:
    """A 4-series hourly synthetic config; ``a__b=value`` overrides nested keys."""
    raw: dict[str, Any] = {
        "experiment": {"name": "doctor"},
        "data": {
            "synthetic": {"n_series": 4, "n_timesteps": 360, "seed": 1},
            "input_chunk_length": 48,
            "output_chunk_length": 12,
            "stride": 2,
        },
        "model": {"name": "dlinear"},
        "training": {"max_epochs": 3, "batch_size": 32, "seed": 7},
    }
    return config_with(raw, **overrides)


@pytest.fixture
def make_config():
    return doctor_config
