"""Fit a loss's raw head parameters, shared by every horizon step, to i.i.d. samples."""

from __future__ import annotations

import torch

from tsdl.losses import BaseLoss


def fit_constant_head(loss: BaseLoss, samples: torch.Tensor, *, steps: int = 400) -> torch.Tensor:
    """Minimize ``loss`` over one raw head vector for ``samples [N]``; returns raw ``[1, 1, n_out]``."""
    raw = torch.zeros(1, 1, loss.n_outputs, requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)
    target = samples.reshape(-1, 1).float()
    for _ in range(steps):
        opt.zero_grad()
        loss(raw.expand(target.shape[0], 1, -1), target).backward()
        opt.step()
    return raw.detach()
