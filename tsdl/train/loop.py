"""The per-worker training loop that Ray Train runs on every DDP rank.

Each worker builds windows from its own Ray Data shard, trains with AdamW + clipping + AMP,
validates every epoch (all-reduced over ranks), steps ReduceLROnPlateau and early stopping, and
reports metrics with a checkpoint holding ``last.pt`` and ``best.pt``. Only rank 0 writes
checkpoints and logs to MLflow.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import ray.train
import ray.train.torch
import torch
import torch.distributed as dist

from tsdl.config import TsdlConfig
from tsdl.data import Batch, WindowSet
from tsdl.errors import TrainingError
from tsdl.losses import BaseLoss, build_loss
from tsdl.models import BaseForecaster, build_model
from tsdl.train.checkpointing import BestWeights, TrainState, load_best, load_last, save_checkpoint
from tsdl.train.early_stopping import EarlyStopping
from tsdl.train.finetune import FinetunePlan, apply_finetune
from tsdl.train.precision import MixedPrecision
from tsdl.train.seeding import epoch_seed, rng_state, seed_everything, set_rng_state

__all__ = ["EpochHook", "MetricsLogger", "train_loop_per_worker"]

# Called as hook(epoch, rank) at the start of every epoch; lets tests inject faults and tools
# (e.g. the doctor) observe training without touching the loop.
EpochHook = Callable[[int, int], None]


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; `loop_config` comes from `tsdl.train.trainer.build_trainer`."""
    config = TsdlConfig.model_validate(loop_config["config"])
    dims: dict[str, int] = loop_config["dims"]
    hooks: list[EpochHook] = loop_config.get("epoch_hooks", [])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    tcfg = config.training

    # Identical initial weights on every rank (DDP also broadcasts them), then rank-specific streams.
    seed_everything(tcfg.seed, deterministic=tcfg.deterministic, use_cuda=device.type == "cuda")
    loss_fn = build_loss(config.loss)
    model = build_model(config.model, **dims, n_outputs=loss_fn.n_outputs)
    # Parent weights load before DDP wraps the model (which broadcasts rank 0's weights).
    finetune = apply_finetune(model, config, loop_config.get("init_state"))
    model = ray.train.torch.prepare_model(model)
    loss_fn = loss_fn.to(device)

    window_args = dict(
        input_chunk_length=config.data.input_chunk_length,
        output_chunk_length=config.data.output_chunk_length,
    )
    # Training windows use data.stride; validation scores every window (stride 1).
    train_set = WindowSet.from_shard(
        ray.train.get_dataset_shard("train"), stride=config.data.stride, **window_args
    )
    val_set = WindowSet.from_shard(ray.train.get_dataset_shard("val"), **window_args)
    per_worker_batch = max(1, tcfg.batch_size // world)
    steps_per_epoch = _common_steps(len(train_set), per_worker_batch, tcfg.limit_train_batches, device)

    optimizer = torch.optim.AdamW(
        finetune.param_groups(model), lr=tcfg.optimizer.lr, weight_decay=tcfg.optimizer.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=tcfg.lr_scheduler.factor,
        patience=tcfg.lr_scheduler.patience,
        min_lr=tcfg.lr_scheduler.min_lr,
    )
    amp = MixedPrecision(tcfg.precision, device)
    stopper = EarlyStopping(
        patience=tcfg.early_stopping.patience,
        min_delta=tcfg.early_stopping.min_delta,
        enabled=tcfg.early_stopping.enabled,
    )
    state = _Resumable(model=model, optimizer=optimizer, scheduler=scheduler, amp=amp, stopper=stopper)
    state.restore(ray.train.get_checkpoint())

    logger = _worker_logger(loop_config, rank)
    if loop_config.get("init_state") is not None and state.epoch == 0:
        # The parent's weights on this run's validation data, before any update: the zero-shot score.
        init_val = _validate(model, loss_fn, amp, val_set, per_worker_batch, device)
        logger.log_epoch(0, {"init_val_loss": init_val})
    val_every = max(1, math.ceil(steps_per_epoch * tcfg.val_check_interval))
    for epoch in range(state.epoch + 1, tcfg.max_epochs + 1):
        for hook in hooks:
            hook(epoch, rank)
        finetune.start_epoch(epoch, steps_per_epoch)
        torch.manual_seed(epoch_seed(tcfg.seed, epoch, rank))
        started = time.perf_counter()
        model.train()
        loss_sum, n_windows, grad_norm = 0.0, 0, 0.0
        batches = train_set.batches(
            per_worker_batch,
            shuffle=True,
            seed=epoch_seed(tcfg.seed, epoch, rank),
            augment=tcfg.augment,
        )
        for step, batch in enumerate(_take(batches, steps_per_epoch), start=1):
            batch = batch.to(device, non_blocking=tcfg.pin_memory and device.type == "cuda")
            loss, grad_norm = _train_step(
                model, loss_fn, optimizer, amp, batch, tcfg.gradient_clip_val, finetune
            )
            loss_sum += loss * len(batch)
            n_windows += len(batch)
            state.global_step += 1
            if state.global_step % tcfg.log_every_n_steps == 0:
                step_metrics = {"step_loss": loss, "step_grad_norm": grad_norm}
                if config.tracking.log_per_layer_grad_norms:
                    step_metrics |= _per_layer_grad_norms(model)
                logger.log_step(state.global_step, step_metrics)
            if step % val_every == 0 and step < steps_per_epoch:
                intra = _validate(model, loss_fn, amp, val_set, per_worker_batch, device)
                logger.log_step(state.global_step, {"val_loss_intra_epoch": intra})
                model.train()
        elapsed = time.perf_counter() - started
        train_loss = _all_reduce_mean(loss_sum, n_windows, device)
        val_loss = _validate(model, loss_fn, amp, val_set, per_worker_batch, device)
        scheduler.step(val_loss)
        improved = stopper.update(val_loss, epoch)
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "best_val_loss": stopper.best,
            "best_epoch": stopper.best_epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "grad_norm": grad_norm,
            "epoch_time_s": elapsed,
            "windows_per_s": n_windows * world / max(elapsed, 1e-9),
            "early_stopped": stopper.should_stop,
        }
        state.history.append({k: float(v) for k, v in metrics.items()})
        logger.log_epoch(epoch, metrics)
        if rank == 0 and loop_config.get("progress_queue") is not None:
            loop_config["progress_queue"].put_nowait(dict(metrics, max_epochs=tcfg.max_epochs))
        _report(metrics, state, epoch, improved, config, dims, loop_config["scaler_state"], rank)
        if stopper.should_stop:
            break


class _Resumable:
    """The mutable training state, with restore-from-checkpoint and snapshot."""

    def __init__(self, *, model, optimizer, scheduler, amp: MixedPrecision, stopper: EarlyStopping):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.amp, self.stopper = amp, stopper
        self.epoch = 0
        self.global_step = 0
        self.history: list[dict[str, float]] = []
        self.best: BestWeights | None = None

    def restore(self, checkpoint: ray.train.Checkpoint | None) -> None:
        if checkpoint is None:
            return
        with checkpoint.as_directory() as directory:
            last = load_last(Path(directory))
            if (Path(directory) / "best.pt").exists():
                self.best = load_best(Path(directory))
        _unwrap(self.model).load_state_dict(last.model)
        self.optimizer.load_state_dict(last.optimizer)
        self.scheduler.load_state_dict(last.scheduler)
        self.amp.load_state_dict(last.grad_scaler)
        self.stopper.load_state_dict(last.early_stopping)
        set_rng_state(last.rng)
        self.epoch, self.global_step, self.history = last.epoch, last.global_step, last.history

    def snapshot(self, epoch: int) -> TrainState:
        return TrainState(
            epoch=epoch,
            model=_cpu_state(self.model),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            grad_scaler=self.amp.state_dict(),
            early_stopping=self.stopper.state_dict(),
            rng=rng_state(),
            history=list(self.history),
            global_step=self.global_step,
        )


def _train_step(
    model: torch.nn.Module,
    loss_fn: BaseLoss,
    optimizer: torch.optim.Optimizer,
    amp: MixedPrecision,
    batch: Batch,
    clip: float | None,
    finetune: FinetunePlan,
) -> tuple[float, float]:
    optimizer.zero_grad(set_to_none=True)
    with amp.autocast():
        pred = model(batch.past, batch.future, batch.static)
    loss = loss_fn(pred.float(), batch.target)
    if not torch.isfinite(loss):
        raise TrainingError(
            f"training loss became {loss.item()} (non-finite)",
            hint="lower training.optimizer.lr, keep gradient_clip_val set, or run `tsdl doctor`",
        )
    amp.scaler.scale(loss).backward()
    finetune.before_step(model, optimizer)  # frozen parameters lose their gradient; lr warm-up
    amp.scaler.unscale_(optimizer)
    params = [p for p in model.parameters() if p.grad is not None]
    if clip is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    amp.scaler.step(optimizer)
    amp.scaler.update()
    return float(loss.detach()), float(norm)


@torch.no_grad()
def _validate(
    model: torch.nn.Module,
    loss_fn: BaseLoss,
    amp: MixedPrecision,
    val_set: WindowSet,
    batch_size: int,
    device: torch.device,
) -> float:
    """Mean validation loss over all ranks' windows (every window counted exactly once)."""
    model.eval()
    total, count = 0.0, 0
    forward = _unwrap(model)  # no DDP sync needed for evaluation; ranks may have unequal batches
    for batch in val_set.batches(batch_size, shuffle=False, seed=0):
        batch = batch.to(device)
        with amp.autocast():
            pred = forward(batch.past, batch.future, batch.static)
        total += float(loss_fn(pred.float(), batch.target)) * len(batch)
        count += len(batch)
    return _all_reduce_mean(total, count, device)


def _report(
    metrics: dict[str, Any],
    state: _Resumable,
    epoch: int,
    improved: bool,
    config: TsdlConfig,
    dims: dict[str, int],
    scaler_state: dict,
    rank: int,
) -> None:
    state.epoch = epoch
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    if improved or state.best is None:
        state.best = BestWeights(
            epoch=epoch,
            val_loss=float(metrics["val_loss"]),
            model=_cpu_state(state.model),
            config=config.model_dump(mode="json"),
            dims=dims,
            scaler_state=scaler_state,
        )
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(Path(tmp), last=state.snapshot(epoch), best=state.best)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _common_steps(n_windows: int, batch_size: int, limit: int | None, device: torch.device) -> int:
    """Steps per epoch, equal on every rank (DDP needs the same number of backward passes)."""
    steps = max(1, math.ceil(n_windows / batch_size))
    if limit is not None:
        steps = min(steps, limit)
    if dist.is_available() and dist.is_initialized():
        tensor = torch.tensor([steps], device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        steps = int(tensor.item())
    return steps


def _all_reduce_mean(total: float, count: int, device: torch.device) -> float:
    if dist.is_available() and dist.is_initialized():
        tensor = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        dist.all_reduce(tensor)
        total, count = float(tensor[0]), int(tensor[1])
    return total / max(count, 1)


def _take(batches: Iterator[Batch], n: int) -> Iterator[Batch]:
    for i, batch in enumerate(batches):
        if i >= n:
            return
        yield batch


def _unwrap(model: torch.nn.Module) -> BaseForecaster:
    return getattr(model, "module", model)


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in _unwrap(model).state_dict().items()}


def _per_layer_grad_norms(model: torch.nn.Module) -> dict[str, float]:
    return {
        f"grad_norm/{name}": float(p.grad.norm())
        for name, p in _unwrap(model).named_parameters()
        if p.grad is not None
    }


class MetricsLogger(Protocol):
    """What the loop needs from a tracker; api.py injects an MLflow one (tracking is a later layer)."""

    def log_step(self, step: int, metrics: dict[str, float]) -> None: ...

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...


class _NullLogger:
    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        pass


def _worker_logger(loop_config: dict[str, Any], rank: int) -> MetricsLogger:
    """The injected logger factory, called with this worker's rank (it is a no-op off rank 0)."""
    factory: Callable[..., MetricsLogger] | None = loop_config.get("logger_factory")
    return factory(rank=rank) if factory is not None else _NullLogger()

