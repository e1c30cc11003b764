"""CUDA paths (AMP fp16/bf16, deterministic cuBLAS). Run on a GPU machine: `pytest -m gpu`."""

from __future__ import annotations

import pytest
import torch

from tsdl import api

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.ray,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"),
]


@pytest.mark.parametrize("precision", ["32", "16-mixed", "bf16-mixed"])
def test_amp_training_on_gpu(make_config, precision: str) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False)
    config = make_config(
        training__precision=precision,
        resources__use_gpu=True,
        model={"name": "patchtst", "hidden_size": 64},
        tracking__enabled=False,
    )
    result = api.train(config, progress=False)
    assert len(result.history) == 3
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_pinned_host_batches_change_the_transfer_not_the_result(make_config) -> None:
    """`training.pin_memory` pins each host batch before its non-blocking copy to the GPU."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False)
    runs = [
        api.train(
            make_config(training__pin_memory=pin, resources__use_gpu=True, tracking__enabled=False),
            progress=False,
            run_name=f"pin-{pin}",
        )
        for pin in (True, False)
    ]
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[1].history]


_SMALL_MODELS = {
    "dlinear": {"name": "dlinear"},
    "nhits": {"name": "nhits", "hidden_size": 32},
    "rnn": {"name": "rnn", "hidden_size": 32},
    "patchtst": {"name": "patchtst", "hidden_size": 32, "n_heads": 2, "n_layers": 1},
}


@pytest.mark.parametrize("loss", ["mse", "pinball"])
@pytest.mark.parametrize("model", sorted(_SMALL_MODELS))
def test_every_model_trains_on_gpu_with_deterministic_algorithms(make_config, model: str, loss: str) -> None:
    """The default `training.deterministic: true` on CUDA: no op without a deterministic kernel
    (N-HiTS upsampling, the quantile head's cumulative sum) may sit on the training path."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, num_gpus=1, include_dashboard=False)
    config = make_config(
        training__deterministic=True,
        resources__use_gpu=True,
        model=_SMALL_MODELS[model],
        loss={"name": loss},
        tracking__enabled=False,
    )
    first = api.train(config, progress=False)
    second = api.train(config, progress=False, run_name=f"{first.run_name}-again")
    assert [h["train_loss"] for h in first.history] == [h["train_loss"] for h in second.history]
