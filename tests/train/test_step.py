"""One training step: what it computes is what the config asks for, and nothing changes the update."""

from __future__ import annotations

import pytest
import torch

from tsdl.config import parse_config
from tsdl.data import Batch
from tsdl.losses import build_loss
from tsdl.models import build_model
from tsdl.train.finetune import apply_finetune
from tsdl.train.precision import MixedPrecision
from tsdl.train.step import train_step


def _step(clip: float | None, with_norm: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    torch.manual_seed(0)
    config = parse_config({"model": {"name": "dlinear", "moving_avg": 5}})
    loss_fn = build_loss(config.loss)
    model = build_model(config.model, input_chunk_length=24, output_chunk_length=6, n_past_features=1,
                        n_future_features=0, n_static=0, loss=loss_fn)
    plan = apply_finetune(model, config, None)
    plan.start_epoch(1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    batch = Batch(past=torch.randn(16, 24, 1), future=torch.zeros(16, 6, 0), static=torch.zeros(16, 0),
                  target=torch.randn(16, 6))
    _, norm = train_step(model, loss_fn, optimizer, MixedPrecision("32", torch.device("cpu")), batch, clip, plan,
                         with_norm=with_norm)
    return {k: v.clone() for k, v in model.state_dict().items()}, norm


@pytest.mark.parametrize("clip", [None, 0.05])
def test_the_update_is_the_same_whether_or_not_the_norm_is_asked_for(clip: float | None) -> None:
    with_norm, norm = _step(clip, True)
    without, skipped = _step(clip, False)
    for key, value in with_norm.items():
        assert torch.equal(value, without[key]), key
    assert norm is not None and float(norm) > 0
    if clip is None:
        assert skipped is None  # no norm kernels when nothing reads the norm
    else:
        assert skipped is not None and torch.equal(skipped, norm)  # clipping needs it anyway
