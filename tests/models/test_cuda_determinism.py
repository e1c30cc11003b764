"""No model or loss calls an op that raises on CUDA under ``torch.use_deterministic_algorithms``.

``training.deterministic`` defaults to true, and torch then raises at the first step for ops
without a deterministic CUDA kernel (its documentation lists them). This machine has no GPU, so
the check records every torch function called during forward, loss, backward, point and
quantiles on CPU and compares it with that list; ``tests/train/test_gpu.py`` and
``tests/models/test_registry.py`` run the real thing on a GPU.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from tests.models._contract import make_inputs, make_model
from tsdl.config.loss import LossConfig
from tsdl.losses import LOSSES, build_loss
from tsdl.models import MODELS
from tsdl.models.dlinear import SeriesDecomposition

# From the torch 2.13 `use_deterministic_algorithms` docstring: ops that raise on CUDA.
_RAISES_ON_CUDA = {
    F.interpolate,
    F.grid_sample,
    F.nll_loss,
    F.ctc_loss,
    F.embedding_bag,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
    F.adaptive_max_pool2d,
    F.avg_pool3d,
    F.max_pool3d,
    F.max_unpool1d,
    torch.cumsum,
    torch.Tensor.cumsum,
    torch.histc,
    torch.bincount,
    torch.kthvalue,
    torch.Tensor.put_,
    torch.Tensor.scatter_reduce,
}


class _Recorder(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.called: set = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.called.add(func)
        if func in (F.pad,) and (kwargs or {}).get("mode", "constant") in {"reflect", "replicate"}:
            self.called.add("F.pad(reflect/replicate)")
        if func in (torch.median, torch.Tensor.median) and (
            len(args) > 1 or "dim" in (kwargs or {})
        ):
            self.called.add("median(dim) with indices")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_training_and_forecasting_use_only_deterministic_cuda_ops(
    model_name: str, loss_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ops chosen by device take their CUDA branch here (DLinear's trend: cumsum on CPU only).
    monkeypatch.setattr(SeriesDecomposition, "uses_cumsum", staticmethod(lambda x: False))
    loss = build_loss(LossConfig(name=loss_name))
    norm = {"instance_norm": "robust"} if loss.supports_instance_norm else {"instance_norm": "none"}
    model = make_model(model_name, n_past=2, n_future=1, n_static=1, loss=loss, **norm)
    past, future, static = make_inputs(3, n_past=2, n_future=1, n_static=1)
    recorder = _Recorder()
    with recorder:
        out = model(past, future, static)
        loss(out, past[:, -out.shape[1] :, 0].abs().round()).backward()
        loss.point(out)
        loss.quantiles(out, [0.1, 0.5, 0.9])
    bad = {
        getattr(f, "__name__", f)
        for f in recorder.called
        if f in _RAISES_ON_CUDA or isinstance(f, str)
    }
    assert not bad, (
        f"{model_name} + {loss_name} calls ops without a deterministic CUDA kernel: {bad}"
    )
