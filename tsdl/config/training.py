"""How a model is trained (optimizer, schedule, stopping, precision) and on what resources."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tsdl.config.base import StrictModel

__all__ = [
    "AugmentConfig",
    "EarlyStoppingConfig",
    "LRSchedulerConfig",
    "OptimizerConfig",
    "ResourcesConfig",
    "TrainingConfig",
]


class OptimizerConfig(StrictModel):
    """AdamW."""

    lr: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-5, ge=0.0, le=1.0)
    implementation: Literal["auto", "default", "foreach", "fused"] = "auto"
    """torch's AdamW kernel: ``default`` (torch's choice: a loop over parameters on CPU, multi-tensor
    on CUDA), ``foreach`` (multi-tensor ops) or ``fused`` (one fused kernel, CPU and CUDA).
    ``auto`` is ``fused`` on CPU, where it made the optimizer step much cheaper and trained to the
    same losses within float noise, and ``default`` on CUDA (not measured there yet). A run
    resolves it when it starts and stores the kernel it used with its config and manifest
    (docs/benchmarks.md section 1)."""


class LRSchedulerConfig(StrictModel):
    """The epoch-level lr schedule: ReduceLROnPlateau on val_loss, or a fixed decay per epoch.

    ``step`` multiplies every group's lr by `factor` after each epoch from epoch `step_start` on,
    whatever the validation says: with ``factor: 0.5, step_start: 2`` this is the LTSF-Linear
    authors' ``lradj=type1`` (epochs 1 and 2 at the configured lr, then halved every epoch),
    the schedule behind DLinear's published ETTh1 numbers (docs/benchmarks.md).
    """

    enabled: bool = True
    name: Literal["plateau", "step"] = "plateau"
    patience: int = Field(5, ge=0)
    """plateau only: epochs without a val_loss improvement before the lr is reduced."""
    factor: float = Field(0.5, gt=0.0, lt=1.0)
    min_lr: float = Field(1e-7, ge=0.0)
    step_start: int = Field(1, ge=1)
    """step only: the first epoch after which the lr is multiplied by `factor`."""

    @model_validator(mode="after")
    def _options_of_the_chosen_schedule(self) -> LRSchedulerConfig:
        # Compared with the defaults, not model_fields_set: a dumped config (every field written)
        # must load again.
        if self.name == "step" and self.patience != 5:
            raise ValueError("patience applies to name: plateau only; name: step decays every epoch "
                             "(remove patience, or use step_start to hold the lr for the first epochs)")
        if self.name == "plateau" and self.step_start != 1:
            raise ValueError("step_start applies to name: step only (set name: step, or remove step_start)")
        return self


class EarlyStoppingConfig(StrictModel):
    """Stop when val_loss has not improved by min_delta for `patience` epochs."""

    enabled: bool = True
    patience: int = Field(15, ge=1)
    min_delta: float = Field(0.0, ge=0.0)
    monitor: Literal["val_loss"] = "val_loss"


class AugmentConfig(StrictModel):
    """Training-only augmentations (never applied to validation or test windows)."""

    window_jitter: int = Field(0, ge=0)
    """Max random shift (in steps) of each training window's start."""
    magnitude_scaling: float = Field(0.0, ge=0.0, lt=1.0)
    """Std of the multiplicative factor (1 + N(0, s)) applied to a whole training window."""


class TrainingConfig(StrictModel):
    """The training template: AdamW, clipping, plateau schedule, early stopping, seeds."""

    max_epochs: int = Field(100, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    """Global batch size; each of N workers gets batch_size / N."""
    batch_by: Literal["window", "time"] = "window"
    """How a training batch is drawn: ``window``, windows shuffled independently over (series,
    time); ``time``, forecast origins shuffled and every series' window at an origin kept in the
    same batch (``batch_size / n_series`` origins x all series), as the multivariate loaders of
    the LTSF-Linear and PatchTST authors do with a wide file (32 timestamps x 7 ETTh1 channels)."""
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    lr_scheduler: LRSchedulerConfig = Field(default_factory=LRSchedulerConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    gradient_clip_val: float | None = Field(1.0, gt=0.0)
    """Max global gradient norm; null disables clipping."""
    precision: Literal["32", "16-mixed", "bf16-mixed"] = "32"
    """AMP: 16-mixed (fp16 + GradScaler, CUDA only) or bf16-mixed (CUDA or CPU)."""
    seed: int = Field(42, ge=0)
    deterministic: bool = True
    """torch.use_deterministic_algorithms(True) (+ CUBLAS workspace setting on GPU)."""
    pin_memory: bool = True
    """Pin host batches for faster host-to-GPU copies (GPU only)."""
    log_every_n_steps: int = Field(50, ge=1)
    """Step interval of per-step logging (loss, per-layer gradient norms). 50 as in Lightning:
    each logged step is an MLflow write, and at 10 those writes cost about 5% of a DLinear epoch."""
    val_check_interval: float = Field(1.0, gt=0.0, le=1.0)
    """Fraction of a training epoch between validations (1.0 = once per epoch)."""
    limit_train_batches: int | None = Field(None, ge=1)
    """Cap on training batches per epoch (smoke runs, tuning budgets)."""
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    compile: bool = False
    """Compile the model's forward with torch.compile (default mode, inductor) for training and
    validation. Off by default: the first epoch pays the compilation (tens of seconds), and the
    compiled kernels are not bit-identical to eager ones. Needs a C++ compiler on CPU (Triton on
    CUDA); a run refuses to start where that is missing. Checkpoints keep the model's own keys."""


class ResourcesConfig(StrictModel):
    """Ray Train scaling, fault tolerance and result storage."""

    num_workers: int = Field(1, ge=1, le=4096)
    """Ray Train workers (DDP processes)."""
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0.0)
    torch_threads: int | None = Field(None, ge=1, le=4096)
    """torch intra-op threads per worker; unset: cpus_per_worker, or every CPU this process may use
    (the container's CPU quota counted) when one worker trains in the driver. Resolved when the run
    starts and stored with it, so resuming or --reproduce uses the same count on any machine."""
    gpus_per_worker: float = Field(1.0, ge=0.0)
    """GPUs per worker when use_gpu is true."""
    address: str | None = None
    """Ray address: unset starts Ray in-process; 'auto' joins `ray start --head`; or ray://host:10001."""
    storage_path: str = "./tsdl_results"
    """Where Ray stores results and checkpoints: a local dir, shared filesystem or s3://, gs:// URI."""
    max_failures: int = Field(2, ge=-1)
    """Worker-group restarts from the last checkpoint before the run fails (-1: unlimited)."""
    connect_timeout_s: float = Field(10.0, gt=0.0, le=3600.0)
    """Seconds a Ray address (--address, RAY_ADDRESS, address) has to answer before tsdl fails."""
    placement_timeout_s: float = Field(900.0, gt=0.0, le=604_800.0)
    """On a cluster too small for the workers now: seconds to wait for nodes (an autoscaler adding
    them) before the run fails. On this machine (no --address) a run that cannot fit fails at once."""
