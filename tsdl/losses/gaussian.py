"""Gaussian head (mean, scale) scored by negative log-likelihood or by closed-form CRPS."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tsdl.losses.base import BaseLoss, softplus_inverse

__all__ = ["CRPSGaussianLoss", "GaussianNLLLoss", "gaussian_crps"]

_MIN_SCALE = 1e-4
"""Floor of the predicted standard deviation: keeps the NLL finite on constant targets."""


def gaussian_crps(loc: Tensor, scale: Tensor, target: Tensor) -> Tensor:
    """Closed-form CRPS of ``N(loc, scale^2)`` at ``target`` (Gneiting & Raftery, 2007).

    ``CRPS = sigma * (z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi))`` with ``z = (y - mu) / sigma``.

    Args:
        loc, scale, target: broadcastable tensors, e.g. ``[B, H]``.

    Returns:
        Elementwise CRPS with the broadcast shape.
    """
    z = (target - loc) / scale
    cdf = torch.special.ndtr(z)
    pdf = torch.exp(-0.5 * z**2) / math.sqrt(2.0 * math.pi)
    return scale * (z * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / math.sqrt(math.pi))


class GaussianNLLLoss(BaseLoss):
    """Negative log-likelihood of ``N(mu, sigma^2)``, including the ``log(2 pi) / 2`` constant.

    The head is ``(mu, sigma)`` with ``sigma = softplus(raw) + 1e-4``; ``point`` is ``mu``.
    """

    name = "gaussian_nll"
    n_outputs = 2
    is_probabilistic = True

    def domain_map(self, pred: Tensor) -> tuple[Tensor, Tensor]:
        """Raw ``[B, H, 2]`` -> ``(loc [B, H], scale [B, H])``, scale > 0."""
        return pred[..., 0], F.softplus(pred[..., 1]) + _MIN_SCALE

    def rescale(self, raw: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """``mu -> loc + scale * mu`` and ``sigma -> scale * sigma`` (above the 1e-4 floor)."""
        s = scale.unsqueeze(-1)
        mu = raw[..., :1] * s + loc.unsqueeze(-1)
        sigma = softplus_inverse(F.softplus(raw[..., 1:]) * s)
        return torch.cat([mu, sigma], dim=-1)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check(pred, target)
        loc, scale = self.domain_map(pred)
        z = (target - loc) / scale
        return torch.mean(0.5 * z**2 + torch.log(scale) + 0.5 * math.log(2.0 * math.pi))

    def point(self, pred: Tensor) -> Tensor:
        return pred[..., 0]

    def quantiles(self, pred: Tensor, levels: Sequence[float]) -> Tensor:
        """``mu + sigma * Phi^-1(tau)`` for each level: ``[B, H, Q]``."""
        loc, scale = self.domain_map(pred)
        z = torch.special.ndtri(torch.tensor(list(levels), dtype=pred.dtype, device=pred.device))
        return loc.unsqueeze(-1) + scale.unsqueeze(-1) * z


class CRPSGaussianLoss(GaussianNLLLoss):
    """Closed-form CRPS of the Gaussian head: robust to outliers where the NLL is not."""

    name = "crps_gaussian"

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check(pred, target)
        loc, scale = self.domain_map(pred)
        return gaussian_crps(loc, scale, target).mean()
