"""Heads for non-negative, intermittent targets: Tweedie mean and zero-inflated negative binomial.

Both need non-negative targets, so use them with ``data.scaler: none`` (or a scale-only scaler).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tsdl.config.loss import LossConfig
from tsdl.losses.base import BaseLoss
from tsdl.losses.quantile import cumsum_last

__all__ = ["TweedieLoss", "ZINBLoss", "tweedie_deviance", "zinb_log_prob"]

_EPS = 1e-6
"""Floor of the NB mean and total count: keeps logs finite when softplus underflows."""


def tweedie_deviance(log_mean: Tensor, target: Tensor, power: float) -> Tensor:
    """Unit Tweedie deviance for ``1 < p < 2``, from the log of the mean (stable, no overflow).

    ``d(y, mu) = 2 (y^(2-p) / ((1-p)(2-p)) - y mu^(1-p) / (1-p) + mu^(2-p) / (2-p))``.

    Args:
        log_mean: ``log(mu)``, e.g. ``[B, H]``.
        target: ``y >= 0``, same shape.
        power: variance power ``p``.

    Returns:
        Elementwise deviance.
    """
    p = power
    y_term = torch.where(target > 0, target.clamp_min(_EPS) ** (2 - p), torch.zeros_like(target))
    return 2.0 * (
        y_term / ((1 - p) * (2 - p))
        - target * torch.exp((1 - p) * log_mean) / (1 - p)
        + torch.exp((2 - p) * log_mean) / (2 - p)
    )


def zinb_log_prob(mean: Tensor, total_count: Tensor, gate_logit: Tensor, target: Tensor) -> Tensor:
    """Log-probability of a zero-inflated negative binomial, parametrized by the NB mean.

    ``P(y) = pi 1[y = 0] + (1 - pi) NB(y; r, mu)`` with ``pi = sigmoid(gate_logit)`` and
    ``NB(y) = Gamma(y + r) / (Gamma(r) y!) (r / (r + mu))^r (mu / (r + mu))^y``. Non-integer
    ``y`` uses the continuous (lgamma) extension.

    Args:
        mean, total_count, gate_logit, target: broadcastable tensors, e.g. ``[B, H]``.

    Returns:
        Elementwise log-probability.
    """
    log_r_mu = torch.log(total_count + mean)
    nb = (
        torch.lgamma(target + total_count)
        - torch.lgamma(total_count)
        - torch.lgamma(target + 1.0)
        + total_count * (torch.log(total_count) - log_r_mu)
        + target * (torch.log(mean) - log_r_mu)
    )
    log_gate, log_keep = F.logsigmoid(gate_logit), F.logsigmoid(-gate_logit)
    zero = torch.logaddexp(log_gate, log_keep + nb)
    return torch.where(target == 0, zero, log_keep + nb)


class TweedieLoss(BaseLoss):
    """Mean Tweedie deviance with a log link: the model predicts ``log(mu)``.

    A point head (``point`` = ``mu = exp(raw)``); the power is ``loss.tweedie_power``.
    """

    name = "tweedie"
    requires_nonnegative_target = True
    supports_instance_norm = False

    def __init__(self, power: float = 1.5) -> None:
        super().__init__()
        self.power = float(power)

    @classmethod
    def from_config(cls, config: LossConfig) -> BaseLoss:
        return cls(config.tweedie_power)

    def domain_map(self, pred: Tensor) -> Tensor:
        """Raw ``[B, H, 1]`` -> mean ``[B, H]`` (log link)."""
        return torch.exp(pred[..., 0])

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check(pred, target)
        return tweedie_deviance(pred[..., 0], target, self.power).mean()

    def point(self, pred: Tensor) -> Tensor:
        return self.domain_map(pred)


class ZINBLoss(BaseLoss):
    """Negative log-likelihood of a zero-inflated negative binomial.

    The head is ``(mu, r, pi)``: ``mu = softplus(raw_0)``, ``r = softplus(raw_1)`` (total count;
    variance ``mu + mu^2 / r``) and ``pi = sigmoid(raw_2)`` (probability of a structural zero).
    ``point`` is the mean ``(1 - pi) mu``; ``quantiles`` are exact integer quantiles.
    """

    name = "zinb"
    n_outputs = 3
    is_probabilistic = True
    requires_nonnegative_target = True
    supports_instance_norm = False

    _BLOCK = 256
    """Counts evaluated at once when searching quantiles."""

    def domain_map(self, pred: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Raw ``[B, H, 3]`` -> ``(mean, total_count, gate)``, each ``[B, H]``."""
        mean = F.softplus(pred[..., 0]) + _EPS
        total_count = F.softplus(pred[..., 1]) + _EPS
        return mean, total_count, torch.sigmoid(pred[..., 2])

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        self._check(pred, target)
        mean, total_count, _ = self.domain_map(pred)
        return -zinb_log_prob(mean, total_count, pred[..., 2], target).mean()

    def point(self, pred: Tensor) -> Tensor:
        mean, _, gate = self.domain_map(pred)
        return (1.0 - gate) * mean

    @torch.no_grad()
    def quantiles(self, pred: Tensor, levels: Sequence[float]) -> Tensor:
        """Smallest count ``k`` with ``CDF(k) >= tau``, found by summing the pmf block by block.

        Returns:
            ``[B, H, Q]`` integer-valued quantiles (in ``pred``'s dtype).
        """
        mean, total_count, _ = (t.double() for t in self.domain_map(pred))
        gate_logit = pred[..., 2].double().unsqueeze(-1)
        tau = torch.tensor(list(levels), dtype=torch.float64, device=pred.device)
        std = torch.sqrt(mean + mean**2 / total_count)
        limit = int(math.ceil(float((mean + 40.0 * std).max()))) + 1
        below = torch.zeros(*mean.shape, tau.numel(), dtype=torch.long, device=pred.device)
        cdf = torch.zeros_like(mean)
        params = (mean.unsqueeze(-1), total_count.unsqueeze(-1), gate_logit)
        for start in range(0, limit, self._BLOCK):
            ks = torch.arange(start, start + self._BLOCK, dtype=torch.float64, device=pred.device)
            pmf = torch.exp(zinb_log_prob(*params, ks))  # [B, H, K]
            cdfs = cdf.unsqueeze(-1) + cumsum_last(pmf)
            below += (cdfs.unsqueeze(-2) < tau.unsqueeze(-1)).sum(-1)  # [B, H, Q]
            cdf = cdfs[..., -1]
            if bool((cdf >= tau.max()).all()):
                break
        return below.to(pred.dtype)
