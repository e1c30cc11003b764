"""A short training loop on clean sines, to check an architecture can actually learn."""

from __future__ import annotations

import torch

from tests.models._contract import DIMS, sine_windows
from tsdl.models import BaseForecaster


def fit_sines(model: BaseForecaster, *, steps: int = 200, lr: float = 0.01) -> float:
    """Train ``model`` to continue 32 sines with MSE; returns the final training MSE."""
    past, target = sine_windows(32)
    empty = torch.zeros(32, DIMS["output_chunk_length"], 0), torch.zeros(32, 0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.mean((model(past, *empty)[..., 0] - target) ** 2)
        loss.backward()
        opt.step()
    return loss.item()
