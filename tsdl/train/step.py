"""One training step, the finite-loss check, validation and the all-reduces they need.

Speed (docs/benchmarks.md): the step never waits on the host: loss and gradient norm stay on the
device and are read back only at logging steps, every ``CHECK_EVERY`` steps (the finite check)
and at the end of the epoch.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from tsdl.config import TrainingConfig
from tsdl.data import Batch, WindowSet
from tsdl.errors import TrainingError
from tsdl.losses import BaseLoss
from tsdl.models import BaseForecaster
from tsdl.train.finetune import FinetunePlan
from tsdl.train.precision import MixedPrecision

__all__ = [
    "CHECK_EVERY",
    "NonFiniteLoss",
    "all_reduce_mean",
    "check_finite",
    "cpu_state",
    "per_layer_grad_norms",
    "steps_per_epoch_on_all_ranks",
    "train_step",
    "unwrap",
    "validation_loss",
]

CHECK_EVERY = 32
"""Steps between finite-loss checks (each one is a host sync; a NaN stops the run soon after)."""


def train_step(
    model: torch.nn.Module,
    loss_fn: BaseLoss,
    optimizer: torch.optim.Optimizer,
    amp: MixedPrecision,
    batch: Batch,
    clip: float | None,
    finetune: FinetunePlan,
    *,
    with_norm: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One optimizer step; returns (loss, grad norm) as device tensors (no host sync here).

    The gradient norm is computed only when clipping needs it or ``with_norm`` asks for it (the
    loop asks at logging steps and the epoch's last step, whose norm it reports): without
    clipping, nothing else reads it, and one norm kernel per parameter every step was work the
    config never asked for. The norm is None when it was not computed.
    """
    optimizer.zero_grad(set_to_none=True)
    with amp.autocast():
        pred = model(batch.past, batch.future, batch.static)
    loss = loss_fn(pred.float(), batch.target)
    amp.scaler.scale(loss).backward()
    finetune.before_step(model, optimizer)  # frozen parameters lose their gradient; lr warm-up
    amp.scaler.unscale_(optimizer)
    norm: torch.Tensor | None = None
    if clip is not None or with_norm:
        params = [p for p in model.parameters() if p.grad is not None]
        if clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    amp.scaler.step(optimizer)
    amp.scaler.update()
    return loss.detach(), None if norm is None else norm.detach()


class NonFiniteLoss(TrainingError):
    """The training loss became NaN/inf: the run fails after logging the epoch as NaN.

    Its one fix names the config change and the doctor, which reads that NaN epoch; `for_run`
    names the doctor command for the run's MLflow id once the caller knows it.

    Args:
        message: what became non-finite, and by which step.
        change: the config change to try (lower lr, clip gradients).
        mlflow_run_id: the run's MLflow id, when it is tracked.
    """

    def __init__(self, message: str, *, change: str = "lower training.optimizer.lr",
                 mlflow_run_id: str | None = None) -> None:
        doctor = f"tsdl doctor --run-id {mlflow_run_id}" if mlflow_run_id else "tsdl doctor -c CONFIG"
        super().__init__(message, hint=f"{change}; diagnose with `{doctor}`")
        self.change = change

    def for_run(self, mlflow_run_id: str) -> NonFiniteLoss:
        """The same failure, its fix naming `tsdl doctor --run-id` for this run."""
        return NonFiniteLoss(self.message, change=self.change, mlflow_run_id=mlflow_run_id)


def check_finite(value: torch.Tensor, global_step: int, training: TrainingConfig) -> None:
    """Fail the run on a NaN/inf training loss (``value`` is a loss or a running sum of losses)."""
    if not bool(torch.isfinite(value)):
        clip = training.gradient_clip_val
        lr = f"lower training.optimizer.lr (now {training.optimizer.lr:.3g})"
        change = (f"{lr} or enable gradient clipping (training.gradient_clip_val=1.0)" if clip is None
                  else f"{lr} or clip gradients tighter (training.gradient_clip_val, now {clip:.3g})")
        raise NonFiniteLoss(
            f"training loss became non-finite ({float(value)}) by global step {global_step}", change=change
        )


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module,
    loss_fn: BaseLoss,
    amp: MixedPrecision,
    val_set: WindowSet,
    batch_size: int,
    device: torch.device,
) -> float:
    """Mean validation loss over all ranks' windows (every window counted exactly once)."""
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    forward = unwrap(model)  # no DDP sync needed for evaluation; ranks may have unequal batches
    for batch in val_set.batches(batch_size, shuffle=False, seed=0):
        batch = batch.to(device)
        with amp.autocast():
            pred = forward(batch.past, batch.future, batch.static)
        total += loss_fn(pred.float(), batch.target).double() * len(batch)
        count += len(batch)
    return all_reduce_mean(float(total), count, device)


def steps_per_epoch_on_all_ranks(
    n_windows: int, batch_size: int, limit: int | None, device: torch.device
) -> int:
    """Steps per epoch, equal on every rank (DDP needs the same number of backward passes)."""
    steps = max(1, math.ceil(n_windows / batch_size))
    if limit is not None:
        steps = min(steps, limit)
    if dist.is_available() and dist.is_initialized():
        tensor = torch.tensor([steps], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        steps = int(tensor.item())
    return steps


def all_reduce_mean(total: float, count: int, device: torch.device) -> float:
    if dist.is_available() and dist.is_initialized():
        tensor = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        total, count = float(tensor[0]), int(tensor[1])
    return total / max(count, 1)


def unwrap(model: torch.nn.Module) -> BaseForecaster:
    return getattr(model, "module", model)


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}


def per_layer_grad_norms(model: torch.nn.Module) -> dict[str, float]:
    return {
        f"grad_norm/{name}": float(p.grad.norm())
        for name, p in unwrap(model).named_parameters()
        if p.grad is not None
    }
