"""Reversible instance normalization (Kim et al., "RevIN", ICLR 2022).

Each lookback window is standardized by its own mean and standard deviation before the network
sees it, and the forecast is mapped back, so level shifts between windows (distribution drift)
do not have to be learned. Only output channel 0 is de-normalized: by the head convention it is
the location (mean, median or anchor quantile) on the target's scale; other channels (scales,
gates, quantile gaps) stay in the network's units.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["RevIN"]

_EPS = 1e-5


class RevIN(torch.nn.Module):
    """Per-window standardization with a learnable affine map, and its inverse."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def normalize(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Args: x ``[B, L]``. Returns: ``(normalized [B, L], mean [B, 1], std [B, 1])``."""
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + _EPS).detach()
        return (x - mean) / std * self.weight + self.bias, mean, std

    def denormalize(self, out: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        """Map channel 0 of ``out [B, H, N]`` back to the input's scale; other channels unchanged."""
        location = (out[..., :1] - self.bias) / (self.weight + _EPS) * std.unsqueeze(-1)
        return torch.cat([location + mean.unsqueeze(-1), out[..., 1:]], dim=-1)
