"""Shared checks every registered model must pass, and small configs to run them fast."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import TypeAdapter

from tsdl.config.model import ModelConfig
from tsdl.losses import BaseLoss, MSELoss
from tsdl.models import BaseForecaster, build_model

__all__ = ["DIMS", "make_inputs", "make_model", "sine_windows", "small_config"]

DIMS: dict[str, int] = {"input_chunk_length": 32, "output_chunk_length": 8}

_SMALL: dict[str, dict[str, Any]] = {
    "dlinear": {"moving_avg": 5},
    "nhits": {"hidden_size": 16, "n_blocks": 2, "n_layers": 2},
    "rnn": {"hidden_size": 16, "n_layers": 1},
    "patchtst": {
        "hidden_size": 16,
        "n_heads": 2,
        "n_layers": 1,
        "ff_size": 32,
        "patch_len": 8,
        "patch_stride": 4,
    },
}


def small_config(name: str, **overrides: Any) -> Any:
    """A fast-to-run config of architecture ``name``."""
    values = {"name": name, **_SMALL.get(name, {}), **overrides}
    return TypeAdapter(ModelConfig).validate_python(values)


def make_model(
    name: str,
    *,
    n_past: int = 1,
    n_future: int = 0,
    n_static: int = 0,
    loss: BaseLoss | None = None,
    seed: int = 0,
    **overrides: Any,
) -> BaseForecaster:
    """A small model of ``name`` whose head is ``loss``'s (MSE by default)."""
    torch.manual_seed(seed)
    return build_model(
        small_config(name, **overrides),
        **DIMS,
        n_past_features=n_past,
        n_future_features=n_future,
        n_static=n_static,
        loss=loss or MSELoss(),
    )


def make_inputs(
    batch: int, *, n_past: int = 1, n_future: int = 0, n_static: int = 0, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random ``(past, future, static)`` with a sine in the target channel."""
    gen = torch.Generator().manual_seed(seed)
    L, H = DIMS["input_chunk_length"], DIMS["output_chunk_length"]
    past = torch.randn(batch, L, n_past, generator=gen)
    phase = torch.rand(batch, 1, generator=gen) * 6.28
    past[..., 0] = torch.sin(torch.arange(L) / 3.0 + phase) + 0.1 * past[..., 0]
    future = torch.randn(batch, H, n_future, generator=gen)
    static = torch.randn(batch, n_static, generator=gen)
    return past, future, static


def sine_windows(batch: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean sines of random phase: ``past [B, L, 1]`` and its continuation ``target [B, H]``."""
    gen = torch.Generator().manual_seed(seed)
    L, H = DIMS["input_chunk_length"], DIMS["output_chunk_length"]
    t = torch.arange(L + H) / 3.0
    series = torch.sin(t + torch.rand(batch, 1, generator=gen) * 6.28)
    return series[:, :L, None], series[:, L:]
