"""DLinear reproduces its paper on ETTh1 (L=336, H=96, MSE loss): test MSE about 0.375.

Setup of the paper: the 12/4/4-month split, a standard scaler fitted on the train rows, the
seven channels as independent univariate series sharing one model, Adam at 5e-3 halved every
epoch, 32 timestamps (x 7 channels) per batch, test MSE at the best validation epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tsdl.config.model import DLinearConfig
from tsdl.models import build_model

_ETTH1 = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ETTh1.csv"
_L, _H = 336, 96


def _windows(values: np.ndarray, start: int, stop: int) -> torch.Tensor:
    """Every ``[L + H]`` window of every channel in rows ``start:stop``: ``[C * N, L + H]``."""
    series = torch.from_numpy(values[start:stop]).T.contiguous()
    return series.unfold(1, _L + _H, 1).reshape(-1, _L + _H)


@pytest.mark.slow
@pytest.mark.skipif(not _ETTH1.exists(), reason=f"ETTh1 benchmark data not found at {_ETTH1}")
def test_dlinear_matches_the_paper_on_etth1() -> None:
    import pandas as pd

    torch.manual_seed(2021)
    values = pd.read_csv(_ETTH1).iloc[:, 1:].to_numpy(np.float32)
    train_rows = values[:8640]
    values = (values - train_rows.mean(0)) / train_rows.std(0)
    train = _windows(values, 0, 8640)
    val, test = _windows(values, 8640 - _L, 11520), _windows(values, 11520 - _L, 14400)
    model = build_model(
        DLinearConfig(moving_avg=25),
        input_chunk_length=_L,
        output_chunk_length=_H,
        n_past_features=1,
        n_future_features=0,
        n_static=0,
        n_outputs=1,
    )

    def mse(windows: torch.Tensor) -> torch.Tensor:
        empty = windows.new_zeros(len(windows), _H, 0), windows.new_zeros(len(windows), 0)
        pred = model(windows[:, :_L, None], *empty)[..., 0]
        return torch.mean((pred - windows[:, _L:]) ** 2)

    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    scores: list[tuple[float, float]] = []
    for _ in range(3):
        for idx in torch.randperm(len(train)).split(32 * 7):
            opt.zero_grad()
            mse(train[idx]).backward()
            opt.step()
        for group in opt.param_groups:
            group["lr"] *= 0.5
        with torch.no_grad():
            scores.append((mse(val).item(), mse(test).item()))

    test_at_best_val = min(scores)[1]
    assert test_at_best_val < 0.395, f"test MSE {test_at_best_val:.4f}, paper 0.375 ({scores})"
