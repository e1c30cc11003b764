"""The LR range test on a toy regression (where good learning rates are known) and its pure rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tsdl.config import load_config, parse_config
from tsdl.config.loss import LossConfig
from tsdl.data import Batch
from tsdl.doctor.lr_find import lr_find_png, lr_range_test, suggest_lr, write_config_with_lr
from tsdl.errors import TrainingError
from tsdl.losses import build_loss

L, H = 16, 4


class _Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(L, H)

    def forward(self, past, future, static):
        return self.proj(past[..., 0]).unsqueeze(-1)


def _batches(n: int = 8, size: int = 64) -> list[Batch]:
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(L, H, generator=gen) / math.sqrt(L)
    out = []
    for _ in range(n):
        x = torch.randn(size, L, 1, generator=gen)
        y = x[..., 0] @ weight + 0.01 * torch.randn(size, H, generator=gen)
        out.append(Batch(past=x, future=x[:, :H, :0], static=x[:, 0, :0], target=y))
    return out


def _sweep(**kwargs):
    torch.manual_seed(0)
    return lr_range_test(_Linear(), build_loss(LossConfig(name="mse")), _batches(), **kwargs)


def test_sweep_is_exponential_and_stops_when_the_loss_blows_up() -> None:
    result = _sweep(min_lr=1e-6, max_lr=100.0, num_steps=200)
    lrs = np.asarray(result.lrs)
    ratios = lrs[1:] / lrs[:-1]
    assert np.allclose(ratios, ratios[0])
    assert lrs[0] == pytest.approx(1e-6)
    assert result.diverged and len(lrs) < 200
    assert max(result.smoothed) > 4 * min(result.smoothed)


def test_suggestion_lies_in_the_good_range_where_the_loss_falls() -> None:
    result = _sweep(min_lr=1e-6, max_lr=10.0, num_steps=200)
    low, high = result.good_range
    assert low < result.suggested_lr < high
    assert result.position(result.suggested_lr) == "inside"
    assert result.position(low / 100) == "low" and result.position(high * 100) == "high"
    # Training the toy model at the suggestion makes fast progress; 100x lower barely moves.
    def final_loss(lr: float) -> float:
        torch.manual_seed(1)
        model, loss_fn = _Linear(), build_loss(LossConfig(name="mse"))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        for batch in _batches() * 5:
            opt.zero_grad()
            loss = loss_fn(model(batch.past, batch.future, batch.static), batch.target)
            loss.backward()
            opt.step()
        return float(loss.detach())

    assert final_loss(result.suggested_lr) < 0.5 * final_loss(result.suggested_lr / 100)


def test_suggest_lr_on_a_synthetic_valley() -> None:
    lrs = np.geomspace(1e-6, 1.0, 121)
    x = np.log10(lrs)
    loss = 1.0 - 0.9 / (1 + np.exp(-3 * (x + 3)))  # falls around 1e-3 ...
    loss = loss + np.where(x > -1, (x + 1) ** 2 * 5, 0.0)  # ... and blows up past 1e-1
    valley, steepest, (low, high) = suggest_lr(lrs, loss)
    assert 1e-4 < steepest < 1e-2
    assert low < valley < high
    assert high == pytest.approx(lrs[int(np.argmin(loss))])


def test_suggest_lr_rejects_too_short_sweeps() -> None:
    with pytest.raises(TrainingError, match="at least 5"):
        suggest_lr([1e-3, 1e-2], [1.0, 0.5])


def test_invalid_range_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="min_lr < max_lr"):
        _sweep(min_lr=1.0, max_lr=1e-3)


def test_plot_and_apply(tmp_path: Path) -> None:
    result = _sweep(min_lr=1e-6, max_lr=10.0, num_steps=60)
    png = lr_find_png(result, tmp_path / "lr.png", configured_lr=1e-3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = parse_config({"training": {"batch_size": 16}})
    out = write_config_with_lr(config, 0.0123456, tmp_path / "cfg.lr.yaml")
    again = load_config(out)
    assert again.training.optimizer.lr == pytest.approx(0.0123)
    assert again.training.batch_size == 16
    assert config.training.optimizer.lr == 1e-3  # the original is untouched
