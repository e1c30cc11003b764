"""DDP keeps the ranks in sync: checks that fail without gradient all-reduce.

Comparing loss curves cannot tell (each rank training alone on half the data gives a similar
curve). Here: (1) tsdl's real loop on 2 Ray Train workers, with ``training.compile: true`` (the
compiled model is what DDP wraps), leaves both ranks with bitwise equal parameters after every
epoch, although their shards differ; (2) one tsdl training step on 2
workers, each with half of a fixed batch, gives the gradients and weights of one step on the
whole batch in one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import ray.cloudpickle
import torch

from tsdl.config import TsdlConfig
from tsdl.data import Batch, prepare_data
from tsdl.losses import build_loss
from tsdl.models import build_model
from tsdl.train.finetune import apply_finetune
from tsdl.train.precision import MixedPrecision
from tsdl.train.runtime import RayTrainRuntime
from tsdl.train.seeding import seed_everything
from tsdl.train.step import cpu_state, train_step, unwrap
from tsdl.train.trainer import make_loop_config, model_dims
from tsdl.train.worker import run_worker

pytestmark = [pytest.mark.ray]

# The Ray workers cannot import this test module: ship its functions and classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class SnapshotRuntime(RayTrainRuntime):
    """tsdl's Ray Train runtime, plus a copy of this rank's weights at every report."""

    def __init__(self, loop_config: dict) -> None:
        super().__init__(loop_config)
        self._out = Path(loop_config["snapshot_dir"])
        self._model: torch.nn.Module | None = None

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        compiled = getattr(model, "_compiled_call_impl", None) is not None
        (self._out / f"rank{self.rank}-compiled.txt").write_text(str(compiled))
        self._model = super().prepare_model(model)
        return self._model

    def windows(self, split: str, *, stride: int | None):
        windows = super().windows(split, stride=stride)
        if split == "train":
            first = next(windows.batches(8, shuffle=False, seed=0))
            torch.save(first.target, self._out / f"rank{self.rank}-first-batch.pt")
        return windows

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        state = {k: v.detach().cpu().clone() for k, v in unwrap(self._model).state_dict().items()}
        torch.save(state, self._out / f"rank{self.rank}-epoch{int(metrics['epoch'])}.pt")
        super().report(metrics, checkpoint_dir)


def _snapshot_loop(loop_config: dict) -> None:
    run_worker(loop_config, SnapshotRuntime(loop_config))


def _build(config: TsdlConfig, dims: dict[str, int]):
    """Model, loss, optimizer and fine-tune plan exactly as a tsdl worker builds them."""
    seed_everything(config.training.seed, deterministic=True)
    loss_fn = build_loss(config.loss)
    model = build_model(config.model, **dims, n_outputs=loss_fn.n_outputs)
    plan = apply_finetune(model, config, None)
    optimizer = torch.optim.AdamW(
        plan.param_groups(model), lr=config.training.optimizer.lr, weight_decay=config.training.optimizer.weight_decay
    )
    plan.start_epoch(1, 1)
    return model, loss_fn, optimizer, plan


def _step(model, loss_fn, optimizer, plan, config: TsdlConfig, batch: Batch) -> dict[str, torch.Tensor]:
    """One tsdl training step; returns the gradients it applied (after DDP's all-reduce)."""
    amp = MixedPrecision(config.training.precision, torch.device("cpu"))
    train_step(model, loss_fn, optimizer, amp, batch, config.training.gradient_clip_val, plan)
    return {n: p.grad.detach().clone() for n, p in unwrap(model).named_parameters() if p.grad is not None}


def _one_step_loop(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    config = TsdlConfig.model_validate(loop_config["config"])
    rank = ray.train.get_context().get_world_rank()
    model, loss_fn, optimizer, plan = _build(config, loop_config["dims"])
    model = ray.train.torch.prepare_model(model)
    whole: Batch = loop_config["batch"]
    half = len(whole) // 2
    part = Batch(*(t[rank * half : (rank + 1) * half] for t in (whole.past, whole.future, whole.static, whole.target)))
    grads = _step(model, loss_fn, optimizer, plan, config, part)
    torch.save({"grads": grads, "weights": cpu_state(model)}, Path(loop_config["out"]) / f"rank{rank}.pt")


def _trainer(loop, loop_config: dict, tmp_path: Path, datasets=None):
    import ray.train
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    return TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(
            name=tmp_path.name, storage_path=str(tmp_path / "results"), failure_config=FailureConfig(max_failures=0)
        ),
        datasets=datasets or {},
        dataset_config=ray.train.DataConfig(datasets_to_split=list(datasets or [])),
    )


@pytest.mark.slow(seconds=40)
def test_ranks_hold_bitwise_equal_weights_after_every_epoch(ray_local, make_config, tmp_path: Path) -> None:
    config = make_config(resources__num_workers=2, training__max_epochs=2, tracking__enabled=False,
                         training__compile=True)
    prepared = prepare_data(config)
    loop_config = {**make_loop_config(config, prepared), "snapshot_dir": str(tmp_path)}
    _trainer(_snapshot_loop, loop_config, tmp_path, prepared.to_ray_datasets(num_workers=2)).fit()

    assert [(tmp_path / f"rank{r}-compiled.txt").read_text() for r in (0, 1)] == ["True", "True"]

    first0, first1 = (torch.load(tmp_path / f"rank{r}-first-batch.pt") for r in (0, 1))
    assert not torch.equal(first0, first1), "the ranks must train on different shards"
    for epoch in (1, 2):
        rank0, rank1 = (torch.load(tmp_path / f"rank{r}-epoch{epoch}.pt") for r in (0, 1))
        assert rank0.keys() == rank1.keys()
        unequal = [k for k in rank0 if not torch.equal(rank0[k], rank1[k])]
        assert not unequal, f"epoch {epoch}: ranks diverged in {unequal}"
    before, after = (torch.load(tmp_path / f"rank0-epoch{e}.pt") for e in (1, 2))
    assert any(not torch.equal(before[k], after[k]) for k in before), "epoch 2 changed no weight"


@pytest.mark.slow(seconds=17)
def test_one_step_on_two_workers_equals_one_step_on_the_whole_batch(
    ray_local, make_config, tmp_path: Path
) -> None:
    config = make_config(training__optimizer__lr=0.01)
    prepared = prepare_data(config)
    dims = model_dims(prepared)
    whole = next(prepared.windows("train").batches(32, shuffle=False, seed=0))
    loop_config = {"config": config.model_dump(mode="json"), "dims": dims, "batch": whole, "out": str(tmp_path)}
    _trainer(_one_step_loop, loop_config, tmp_path).fit()

    model, loss_fn, optimizer, plan = _build(config, dims)
    reference_grads = _step(model, loss_fn, optimizer, plan, config, whole)
    reference = cpu_state(model)
    for rank in (0, 1):
        ddp = torch.load(tmp_path / f"rank{rank}.pt")
        assert ddp["grads"].keys() == reference_grads.keys()
        for name, grad in reference_grads.items():
            np.testing.assert_allclose(ddp["grads"][name], grad, rtol=1e-5, atol=1e-7, err_msg=name)
        for name, weight in reference.items():
            np.testing.assert_allclose(ddp["weights"][name], weight, rtol=1e-5, atol=1e-7, err_msg=name)
    # The halves alone give other gradients: the all-reduce is what made them equal.
    model, loss_fn, optimizer, plan = _build(config, dims)
    half = Batch(*(t[:16] for t in (whole.past, whole.future, whole.static, whole.target)))
    alone = _step(model, loss_fn, optimizer, plan, config, half)
    assert any(not torch.allclose(alone[n], reference_grads[n], rtol=1e-3) for n in alone)
