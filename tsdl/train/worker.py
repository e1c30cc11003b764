"""The per-worker training loop, run by a Ray Train DDP rank or by one worker in this process.

Each worker trains with AdamW + clipping + AMP on its windows, validates every epoch
(all-reduced over ranks), steps the lr schedule (`tsdl.train.schedule`) and early stopping, and reports metrics with a
checkpoint holding ``last.pt`` and ``best.pt``. Only rank 0 writes checkpoints and logs to MLflow.

Where the loop runs is a :class:`~tsdl.train.runtime.WorkerRuntime`; the step itself is in
:mod:`tsdl.train.step`. Speed (docs/benchmarks.md): torch gets one intra-op thread per CPU the
worker holds (Ray starts actors with ``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from tsdl.config import TsdlConfig
from tsdl.config.training import OptimizerConfig
from tsdl.data import WindowSet
from tsdl.losses import BaseLoss, build_loss
from tsdl.models import build_model
from tsdl.train.checkpoint_store import Restored
from tsdl.train.checkpointing import BestWeights, TrainState, save_checkpoint
from tsdl.train.early_stopping import EarlyStopping
from tsdl.train.finetune import FinetunePlan, apply_finetune
from tsdl.train.kernels import (
    adamw_kernel,
    check_compile_supported,
    compile_model,
    keep_built_kernel,
    kernel_flags,
)
from tsdl.train.logger import MetricsLogger, worker_logger_from
from tsdl.train.precision import MixedPrecision
from tsdl.train.runtime import RayTrainRuntime, WorkerRuntime
from tsdl.train.schedule import build_scheduler
from tsdl.train.seeding import epoch_seed, rng_state, seed_everything, set_rng_state
from tsdl.train.step import (
    CHECK_EVERY,
    NonFiniteLoss,
    all_reduce_mean,
    check_finite,
    cpu_state,
    per_layer_grad_norms,
    steps_per_epoch_on_all_ranks,
    train_step,
    unwrap,
    validation_loss,
)
from tsdl.train.step_progress import StepReporter
from tsdl.train.threads import torch_threads

__all__ = ["EpochHook", "adamw", "run_worker", "train_loop_per_worker"]

# Called as hook(epoch, rank) at the start of every epoch; lets tests inject faults and tools
# (e.g. the doctor) observe training without touching the loop.
EpochHook = Callable[[int, int], None]


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train entry point; `loop_config` comes from `tsdl.train.trainer.build_trainer`."""
    run_worker(loop_config, RayTrainRuntime(loop_config))


def adamw(params: Any, config: OptimizerConfig, device_type: str = "cpu") -> torch.optim.AdamW:
    """AdamW as ``training.optimizer`` asks, with its kernel (``implementation``, ``auto`` resolved
    for ``device_type``; `tsdl.train.kernels`)."""
    flags = kernel_flags(adamw_kernel(config.implementation, device_type))
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, **flags)


def run_worker(loop_config: dict[str, Any], runtime: WorkerRuntime) -> None:
    """Set up this worker, then train epoch by epoch until max_epochs or early stopping."""
    config = TsdlConfig.model_validate(loop_config["config"])
    # The driver's in-process run passes its own count (every CPU it may use, when unset).
    torch.set_num_threads(loop_config.get("threads") or torch_threads(config, in_process=False))
    worker = _Worker.build(config, loop_config, runtime)
    try:
        _train_epochs(worker, config, loop_config, runtime)
    except BaseException:
        # Buffered step metrics reach the tracker before the driver marks the run FAILED/KILLED.
        with contextlib.suppress(Exception):
            worker.logger.flush()
        raise
    worker.logger.flush()


def _train_epochs(worker: _Worker, config: TsdlConfig, loop_config: dict[str, Any], runtime: WorkerRuntime) -> None:
    if loop_config.get("init_state") is not None and worker.state.epoch == 0:
        worker.logger.log_epoch(0, {"init_val_loss": worker.keep_starting_model()})
    for epoch in range(worker.state.epoch + 1, config.training.max_epochs + 1):
        for hook in loop_config.get("epoch_hooks", []):
            hook(epoch, runtime.rank)
        try:
            metrics, improved = worker.run_epoch(epoch)
        except NonFiniteLoss:
            # The run fails, but its curve must show why: `tsdl doctor --run-id` reads this epoch.
            worker.logger.log_epoch(epoch, {"train_loss": math.nan})
            raise
        worker.publish(epoch, metrics, improved, loop_config)
        if worker.stopper.should_stop:
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

    def restore(self, checkpoint: Restored | None) -> None:
        if checkpoint is None:
            return
        last, self.best = checkpoint.last, checkpoint.best
        unwrap(self.model).load_state_dict(last.model)
        self.optimizer.load_state_dict(last.optimizer)
        keep_built_kernel(self.optimizer)  # the config's kernel, not the saver's
        self.scheduler.load_state_dict(last.scheduler)
        self.amp.load_state_dict(last.grad_scaler)
        self.stopper.load_state_dict(last.early_stopping)
        set_rng_state(last.rng)
        self.epoch, self.global_step, self.history = last.epoch, last.global_step, last.history

    def snapshot(self, epoch: int) -> TrainState:
        return TrainState(
            epoch=epoch,
            model=cpu_state(self.model),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            grad_scaler=self.amp.state_dict(),
            early_stopping=self.stopper.state_dict(),
            rng=rng_state(),
            history=list(self.history),
            global_step=self.global_step,
        )


@dataclass
class _Worker:
    """One worker's model, optimizer, data and state; built once, then run epoch by epoch."""

    config: TsdlConfig
    runtime: WorkerRuntime
    model: torch.nn.Module
    loss_fn: BaseLoss
    optimizer: torch.optim.Optimizer
    scheduler: Any
    amp: MixedPrecision
    stopper: EarlyStopping
    finetune: FinetunePlan
    state: _Resumable
    train_set: WindowSet
    val_set: WindowSet
    batch_size: int
    steps_per_epoch: int
    logger: MetricsLogger
    dims: dict[str, int]
    scaler_state: dict
    progress_queue: Any | None = None  # rank 0 only: the driver's progress queue (live in-epoch line)

    @classmethod
    def build(cls, config: TsdlConfig, loop_config: dict[str, Any], runtime: WorkerRuntime) -> _Worker:
        tcfg, device = config.training, runtime.device
        # Identical initial weights on every rank (DDP also broadcasts them), then rank-specific streams.
        seed_everything(tcfg.seed, deterministic=tcfg.deterministic, use_cuda=device.type == "cuda")
        dims: dict[str, int] = loop_config["dims"]
        loss_fn = build_loss(config.loss)
        model = build_model(config.model, **dims, loss=loss_fn)
        # Parent weights load before DDP wraps the model (which broadcasts rank 0's weights).
        finetune = apply_finetune(model, config, loop_config.get("init_state"))
        if tcfg.compile:  # in place, before DDP wraps it: state_dict keys stay the model's own
            check_compile_supported(device.type)
            compile_model(model)
        model = runtime.prepare_model(model)
        # Training windows use data.stride; validation scores every window (stride 1).
        train_set = runtime.windows("train", stride=config.data.stride)
        val_set = runtime.windows("val", stride=None)
        batch_size = max(1, tcfg.batch_size // runtime.world)
        optimizer = adamw(finetune.param_groups(model), tcfg.optimizer, device.type)
        scheduler = build_scheduler(optimizer, tcfg.lr_scheduler)
        amp = MixedPrecision(tcfg.precision, device)
        stopper = EarlyStopping(
            patience=tcfg.early_stopping.patience,
            min_delta=tcfg.early_stopping.min_delta,
            enabled=tcfg.early_stopping.enabled,
        )
        state = _Resumable(model=model, optimizer=optimizer, scheduler=scheduler, amp=amp, stopper=stopper)
        state.restore(runtime.checkpoint())
        return cls(
            config=config,
            runtime=runtime,
            model=model,
            loss_fn=loss_fn.to(device),
            optimizer=optimizer,
            scheduler=scheduler,
            amp=amp,
            stopper=stopper,
            finetune=finetune,
            state=state,
            train_set=train_set,
            val_set=val_set,
            batch_size=batch_size,
            steps_per_epoch=steps_per_epoch_on_all_ranks(
                len(train_set), batch_size, tcfg.limit_train_batches, device
            ),
            logger=worker_logger_from(loop_config, runtime.rank),
            dims=dims,
            scaler_state=loop_config["scaler_state"],
            progress_queue=loop_config.get("progress_queue") if runtime.rank == 0 else None,
        )

    def validate(self) -> float:
        return validation_loss(self.model, self.loss_fn, self.amp, self.val_set, self.batch_size, self.runtime.device)

    def keep_starting_model(self) -> float:
        """Validate the parent's weights before any update and make them the best so far (epoch 0).

        A fine-tuning run then never ends worse on validation than where it started: an epoch must
        beat the parent to replace it in ``best.pt``, and early stopping counts from it. Returns the
        parent's val_loss on this run's data (the zero-shot score, logged as ``init_val_loss``).
        """
        val_loss = self.validate()
        self.stopper.update(val_loss, 0)
        if self.runtime.rank == 0:
            self.state.best = BestWeights(
                epoch=0,
                val_loss=val_loss,
                model=cpu_state(self.model),
                config=self.config.model_dump(mode="json"),
                dims=self.dims,
                scaler_state=self.scaler_state,
            )
        return val_loss

    def run_epoch(self, epoch: int) -> tuple[dict[str, Any], bool]:
        """Train one epoch, validate, step the scheduler and early stopping; the epoch's metrics."""
        tcfg, rank = self.config.training, self.runtime.rank
        self.finetune.start_epoch(epoch, self.steps_per_epoch)
        torch.manual_seed(epoch_seed(tcfg.seed, epoch, rank))
        started = time.perf_counter()
        loss_sum, n_windows, grad_norm = self._train_epoch(epoch)
        elapsed = time.perf_counter() - started
        train_loss = all_reduce_mean(loss_sum, n_windows, self.runtime.device)
        val_started = time.perf_counter()
        val_loss = self.validate()
        val_time = time.perf_counter() - val_started
        self.scheduler.step(val_loss)
        improved = self.stopper.update(val_loss, epoch)
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "best_val_loss": self.stopper.best,
            "best_epoch": self.stopper.best_epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "grad_norm": grad_norm,
            "epoch_time_s": elapsed,
            "val_time_s": val_time,
            "windows_per_s": n_windows * self.runtime.world / max(elapsed, 1e-9),
            "early_stopped": self.stopper.should_stop,
        }
        return metrics, improved

    def _train_epoch(self, epoch: int) -> tuple[float, int, float]:
        """The epoch's training steps: (sum of window losses, windows, last step's grad norm)."""
        tcfg, device = self.config.training, self.runtime.device
        self.model.train()
        seed = epoch_seed(tcfg.seed, epoch, self.runtime.rank)
        batches = self.train_set.batches(
            self.batch_size, shuffle=True, seed=seed, augment=tcfg.augment, by=tcfg.batch_by
        )
        val_every = max(1, math.ceil(self.steps_per_epoch * tcfg.val_check_interval))
        # Pinned (page-locked) host memory is what lets a non-blocking copy overlap the GPU's work;
        # a non-blocking copy from pageable memory is synchronous.
        pin = tcfg.pin_memory and device.type == "cuda"
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        n_windows, norm = 0, torch.zeros((), device=device)
        live = StepReporter(self.progress_queue, epoch=epoch, max_epochs=tcfg.max_epochs,
                            total_steps=self.steps_per_epoch, world=self.runtime.world)
        for step, batch in enumerate(islice(batches, self.steps_per_epoch), start=1):
            batch = (batch.pin_memory() if pin else batch).to(device, non_blocking=pin)
            # The norm is reported at logging steps and for the epoch's last step only.
            logs = (self.state.global_step + 1) % tcfg.log_every_n_steps == 0
            loss, step_norm = train_step(
                self.model, self.loss_fn, self.optimizer, self.amp, batch, tcfg.gradient_clip_val, self.finetune,
                with_norm=logs or step == self.steps_per_epoch,
            )
            norm = norm if step_norm is None else step_norm
            loss_sum += loss.detach().double() * len(batch)
            n_windows += len(batch)
            self.state.global_step += 1
            live.step(step, n_windows)
            if step % CHECK_EVERY == 0 or step == self.steps_per_epoch:
                check_finite(loss_sum, self.state.global_step, tcfg)
            if logs:
                self._log_step(loss, norm)
            if step % val_every == 0 and step < self.steps_per_epoch:
                intra = self.validate()
                self.logger.log_step(self.state.global_step, {"val_loss_intra_epoch": intra})
                self.model.train()
        return float(loss_sum), n_windows, float(norm)

    def _log_step(self, loss: torch.Tensor, norm: torch.Tensor) -> None:
        check_finite(loss, self.state.global_step, self.config.training)
        metrics = {"step_loss": float(loss), "step_grad_norm": float(norm)}
        if self.config.tracking.log_per_layer_grad_norms:
            metrics |= per_layer_grad_norms(self.model)
        self.logger.log_step(self.state.global_step, metrics)

    def publish(self, epoch: int, metrics: dict[str, Any], improved: bool, loop_config: dict[str, Any]) -> None:
        """Record the epoch: history, logger, the driver's progress queue, the runtime's report."""
        self.state.history.append({k: float(v) for k, v in metrics.items()})
        self.logger.log_epoch(epoch, metrics)
        queue = loop_config.get("progress_queue")
        if self.runtime.rank == 0 and queue is not None:
            queue.put_nowait(dict(metrics, max_epochs=self.config.training.max_epochs))
        self.state.epoch = epoch
        if self.runtime.rank != 0:
            self.runtime.report(metrics, None)
            return
        if improved or self.state.best is None:
            self.state.best = BestWeights(
                epoch=epoch,
                val_loss=float(metrics["val_loss"]),
                model=cpu_state(self.model),
                config=self.config.model_dump(mode="json"),
                dims=self.dims,
                scaler_state=self.scaler_state,
            )
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(Path(tmp), last=self.state.snapshot(epoch), best=self.state.best)
            self.runtime.report(metrics, tmp)
