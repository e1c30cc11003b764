"""Quantile head and its losses: pinball (quantile) loss and the quantile approximation of CRPS.

The head predicts one value per level. To keep quantiles from crossing, the raw outputs are read
as an anchor (the level closest to the median) plus softplus increments accumulated outwards,
so ``q_1 <= q_2 <= ... <= q_Q`` holds by construction rather than by penalty.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tsdl.config.loss import LossConfig
from tsdl.losses.base import BaseLoss, softplus_inverse

__all__ = ["CRPSQuantileLoss", "PinballLoss", "cumsum_last", "interpolate_quantiles", "pinball"]


def cumsum_last(x: Tensor) -> Tensor:
    """``torch.cumsum(x, dim=-1)`` as a matmul with a triangular matrix of ones.

    ``torch.cumsum`` on a floating-point CUDA tensor has no deterministic implementation, so it
    raises under ``training.deterministic: true`` (the default); a matmul does not.
    """
    n = x.shape[-1]
    ones = torch.ones(n, n, dtype=x.dtype, device=x.device)
    return x @ torch.triu(ones)


def pinball(quantiles: Tensor, target: Tensor, levels: Tensor) -> Tensor:
    """Elementwise pinball loss ``max(tau (y - q), (tau - 1)(y - q))``.

    Args:
        quantiles: ``[B, H, Q]`` predicted quantiles.
        target: ``[B, H]`` observations.
        levels: ``[Q]`` quantile levels.

    Returns:
        ``[B, H, Q]``.
    """
    diff = target.unsqueeze(-1) - quantiles
    return torch.maximum(levels * diff, (levels - 1.0) * diff)


def interpolate_quantiles(values: Tensor, levels: Tensor, query: Tensor) -> Tensor:
    """Piecewise-linear quantile function through ``(levels, values)``, flat beyond the ends.

    Args:
        values: ``[B, H, Q]`` non-decreasing quantiles at ``levels``.
        levels: ``[Q]`` increasing levels.
        query: ``[K]`` levels to evaluate.

    Returns:
        ``[B, H, K]``.
    """
    query = query.clamp(levels[0], levels[-1])
    upper = torch.searchsorted(levels, query).clamp(1, max(levels.numel() - 1, 1))
    if levels.numel() == 1:
        return values[..., :1].expand(*values.shape[:-1], query.numel())
    lower = upper - 1
    weight = (query - levels[lower]) / (levels[upper] - levels[lower])
    return values[..., lower] + weight * (values[..., upper] - values[..., lower])


class PinballLoss(BaseLoss):
    """Mean pinball loss over the configured quantile levels (``loss.quantiles``).

    ``point`` is the median (interpolated if 0.5 is not a level).
    """

    name = "pinball"
    is_probabilistic = True

    def __init__(self, levels: Sequence[float] = (0.1, 0.5, 0.9)) -> None:
        super().__init__()
        ordered = sorted(set(float(level) for level in levels))
        self.n_outputs = len(ordered)
        self.register_buffer("levels", torch.tensor(ordered), persistent=False)
        self._anchor = min(range(len(ordered)), key=lambda i: abs(ordered[i] - 0.5))

    @classmethod
    def from_config(cls, config: LossConfig) -> BaseLoss:
        return cls(config.quantiles)

    def domain_map(self, pred: Tensor) -> Tensor:
        """Raw ``[B, H, Q]`` -> non-decreasing quantiles ``[B, H, Q]``.

        Raw channel 0 is the anchor quantile (the level closest to 0.5), so channel 0 is a
        location on the target's scale as for every head; channels ``1..a`` are the softplus
        gaps below it (nearest first) and the rest the gaps above it.
        """
        a = self._anchor
        anchor = pred[..., :1]
        below = anchor - cumsum_last(F.softplus(pred[..., 1 : a + 1])).flip(-1)
        above = anchor + cumsum_last(F.softplus(pred[..., a + 1 :]))
        return torch.cat([below, anchor, above], dim=-1)

    def rescale(self, raw: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """Every quantile ``q -> loc + scale * q``: the anchor moves and scales, each gap scales."""
        s = scale.unsqueeze(-1)
        anchor = raw[..., :1] * s + loc.unsqueeze(-1)
        gaps = softplus_inverse(F.softplus(raw[..., 1:]) * s)
        return torch.cat([anchor, gaps], dim=-1)

    def _score(self, quantiles: Tensor, target: Tensor) -> Tensor:
        return pinball(quantiles, target, self.levels.to(quantiles)).mean()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check(pred, target)
        return self._score(self.domain_map(pred), target)

    def point(self, pred: Tensor) -> Tensor:
        median = torch.tensor([0.5], dtype=pred.dtype, device=pred.device)
        return self._interpolate(pred, median)[..., 0]

    def quantiles(self, pred: Tensor, levels: Sequence[float]) -> Tensor:
        """Quantiles at ``levels``, linearly interpolated between the head's levels and held flat
        outside ``[min(loss.quantiles), max(loss.quantiles)]``."""
        query = torch.tensor(list(levels), dtype=pred.dtype, device=pred.device)
        return self._interpolate(pred, query)

    def _interpolate(self, pred: Tensor, query: Tensor) -> Tensor:
        return interpolate_quantiles(self.domain_map(pred), self.levels.to(pred), query)


class CRPSQuantileLoss(PinballLoss):
    """CRPS approximated from the quantile head: ``CRPS = 2 * integral of pinball over tau``.

    The integral over ``(0, 1)`` uses the midpoint rule on the configured levels: level ``i``
    weighs the width of the interval between the midpoints to its neighbours (the first from 0,
    the last to 1). With a fine grid of levels this converges to the exact CRPS; with equally
    spaced levels it is twice the mean pinball loss up to the end weights.
    """

    name = "crps_quantile"

    def __init__(self, levels: Sequence[float] = (0.1, 0.5, 0.9)) -> None:
        super().__init__(levels)
        edges = torch.cat([torch.zeros(1), (self.levels[1:] + self.levels[:-1]) / 2, torch.ones(1)])
        self.register_buffer("weights", edges[1:] - edges[:-1], persistent=False)

    def _score(self, quantiles: Tensor, target: Tensor) -> Tensor:
        loss = pinball(quantiles, target, self.levels.to(quantiles))
        return 2.0 * (loss * self.weights.to(quantiles)).sum(-1).mean()
