"""Fit a loss's raw head parameters, shared by every horizon step, to i.i.d. samples."""

from __future__ import annotations

import torch

from tsdl.losses import BaseLoss


def fit_constant_head(loss: BaseLoss, samples: torch.Tensor, *, steps: int = 100) -> torch.Tensor:
    """Minimize ``loss`` over one raw head vector for ``samples [N]`` with L-BFGS.

    Returns:
        The fitted raw head ``[1, 1, n_outputs]``.
    """
    raw = torch.zeros(1, 1, loss.n_outputs, dtype=torch.float64, requires_grad=True)
    target = samples.reshape(-1, 1).double()
    opt = torch.optim.LBFGS([raw], lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss(raw.expand(target.shape[0], 1, -1), target)
        value.backward()
        return value

    opt.step(closure)
    return raw.detach()
