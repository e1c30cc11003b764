"""Architectures: one config class per model, selected by `name`.

`hidden_size` is the width knob of every architecture (d_model for PatchTST), so one
search-space entry tunes any of them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from tsdl.config.base import StrictModel

__all__ = [
    "InstanceNorm",
    "DLinearConfig",
    "ModelConfig",
    "NHiTSConfig",
    "PatchTSTConfig",
    "RNNConfig",
]


InstanceNorm = Literal["none", "revin", "mean_std", "robust"]
LOG_SCALE_LOSSES = frozenset({"log_mse", "tweedie", "zinb"})
"""Losses whose head is on a log/count scale: no per-window location-scale normalization."""


class _CommonModelConfig(StrictModel):
    hidden_size: int = Field(128, ge=1, le=8192)
    """Width of hidden layers (d_model for PatchTST; unused by DLinear)."""
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    """Dropout probability."""
    instance_norm: InstanceNorm = "none"
    """Per-window normalization of the target's lookback, undone by the loss on every output
    parameter: none; revin (mean/std + learnable affine, Kim et al. 2022); mean_std; robust
    (median/IQR). Not with log/count-scale losses (log_mse, tweedie, zinb)."""


class DLinearConfig(_CommonModelConfig):
    """DLinear (Zeng et al., 2023): trend/seasonal decomposition and two linear maps."""

    name: Literal["dlinear"] = "dlinear"
    moving_avg: int = Field(25, ge=1)
    """Kernel of the moving average that extracts the trend."""
    init: Literal["default", "mean"] = "default"
    """Initial weights of the two linear maps: default (torch's uniform init); mean (every weight
    1/L, so each output starts as the mean of its lookback, as the DLinear authors' code did
    before its commit 7f7a25b of 2022-08-15). Biases keep torch's init either way."""


class NHiTSConfig(_CommonModelConfig):
    """N-HiTS (Challu et al., 2023): stacks of MLP blocks with multi-rate pooling and interpolation."""

    name: Literal["nhits"] = "nhits"
    n_blocks: int = Field(3, ge=1, le=16)
    """Number of blocks (one per pooling/downsampling rate)."""
    n_layers: int = Field(2, ge=1, le=16)
    """MLP layers per block."""
    pooling_sizes: list[int] | None = None
    """Input pooling kernel per block; unset uses [4, 2, 1]-style decreasing rates."""


class RNNConfig(_CommonModelConfig):
    """A recurrent encoder (LSTM or GRU) with an MLP decoder over the horizon."""

    name: Literal["rnn"] = "rnn"
    cell: Literal["lstm", "gru"] = "lstm"
    n_layers: int = Field(2, ge=1, le=16)


class PatchTSTConfig(_CommonModelConfig):
    """PatchTST (Nie et al., 2023): channel-independent Transformer over patches of the lookback."""

    name: Literal["patchtst"] = "patchtst"
    n_heads: int = Field(4, ge=1, le=64)
    n_layers: int = Field(3, ge=1, le=24)
    patch_len: int = Field(16, ge=1)
    patch_stride: int = Field(8, ge=1)
    ff_size: int = Field(256, ge=1)
    """Width of the Transformer feed-forward layers."""
    instance_norm: InstanceNorm = "revin"
    """As for every model; RevIN by default, as in the paper (set none with log_mse, tweedie, zinb)."""


ModelConfig = Annotated[
    DLinearConfig | NHiTSConfig | RNNConfig | PatchTSTConfig,
    Field(discriminator="name"),
]
