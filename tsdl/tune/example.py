"""The README's demo study: generated data, DLinear, the smoke budget (minutes on 2 CPUs)."""

from __future__ import annotations

from tsdl.config import TsdlConfig, parse_config

__all__ = ["example_config"]


def example_config(overrides: list[str] | tuple[str, ...] = ()) -> TsdlConfig:
    """Synthetic seasonal series (``data.path`` unset), a 24-step horizon, lr/lookback/batch search."""
    raw = {
        "experiment": {"name": "example"},
        "data": {"input_chunk_length": 96, "output_chunk_length": 24, "synthetic": {"n_series": 8, "n_timesteps": 1200}},
        "model": {"name": "dlinear"},
        "training": {"batch_size": 64, "early_stopping": {"patience": 3}},
        "tune": {
            "budget": "smoke",
            "search_space": {
                "training.optimizer.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
                "data.input_chunk_length": {"type": "choice", "values": ["2x", "4x", "7x"]},
                "training.batch_size": {"type": "choice", "values": [32, 64, 128]},
            },
        },
    }
    return parse_config(raw, overrides=overrides, source="<tsdl tune --example>")
