"""Fine-tuning: start from a trained run's weights, freeze parts of the model, adapt to new series."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tsdl.config.base import StrictModel

__all__ = ["FinetuneConfig"]


class FinetuneConfig(StrictModel):
    """What to load from a parent run, what to freeze and how fast each part of the model learns.

    Parameter patterns are fnmatch globs over parameter names (``encoder.layers.*.linear1.*``) or
    module prefixes (``encoder`` matches every parameter under ``encoder.``). Two names are
    reserved: ``head`` (the parameters matched by `head`) and ``backbone`` (every other one).
    """

    init_from: str | None = None
    """MLflow run id or checkpoint directory (holding best.pt) to start from; `tsdl train --init-from` sets it."""
    strict: bool = True
    """Fail when a parent layer is missing or differs in shape; false loads only the matching ones."""
    reset_head: bool = False
    """Keep the head's fresh initialization instead of loading it (new horizon, loss or target)."""
    head: list[str] | None = None
    """Patterns of the head parameters; null: the architecture's output layers (see docs/finetuning.md)."""
    freeze: list[str] = Field(default_factory=list)
    """Patterns of parameters that do not train, e.g. [backbone] to train only the head."""
    unfreeze_epoch: int | None = Field(None, ge=2)
    """First epoch (1-based) in which the frozen parameters train too; null: frozen for the whole run."""
    head_lr: float | None = Field(None, gt=0.0, le=10.0)
    """Learning rate of the head; null: training.optimizer.lr."""
    backbone_lr: float | None = Field(None, gt=0.0, le=10.0)
    """Learning rate of the backbone; null: training.optimizer.lr."""
    warmup_steps: int = Field(0, ge=0)
    """Linear lr warm-up over this many optimizer steps; restarts for a part when it is unfrozen."""
    scalers: Literal["refit", "parent"] = "refit"
    """refit: fit on this run's train split (new series); parent: reuse the parent run's (same series)."""

    @model_validator(mode="after")
    def _schedule_needs_freeze(self) -> FinetuneConfig:
        if self.unfreeze_epoch is not None and not self.freeze:
            raise ValueError(
                f"unfreeze_epoch={self.unfreeze_epoch} needs finetune.freeze patterns "
                "(e.g. freeze: [backbone]), got none"
            )
        return self
