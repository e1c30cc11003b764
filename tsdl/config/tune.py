"""Hyperparameter search: space, staged strategy, ASHA and budget presets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tsdl.config.base import StrictModel

__all__ = [
    "AshaConfig",
    "ChoiceParam",
    "FloatParam",
    "IntParam",
    "ParamSpec",
    "TuneConfig",
    "default_search_space",
]


class FloatParam(StrictModel):
    """A float range; log=true samples log-uniformly."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> FloatParam:
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log ranges need low > 0, got low={self.low}")
        return self


class IntParam(StrictModel):
    """An integer range (inclusive)."""

    type: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntParam:
        if not self.low < self.high:
            raise ValueError(f"low must be below high, got low={self.low}, high={self.high}")
        return self


class ChoiceParam(StrictModel):
    """A categorical choice."""

    type: Literal["choice"] = "choice"
    values: list[float | int | str | bool] = Field(min_length=1)


ParamSpec = Annotated[FloatParam | IntParam | ChoiceParam, Field(discriminator="type")]


def default_search_space() -> dict[str, ParamSpec]:
    """The playbook's space, in priority order (lr first, architecture params last)."""
    return {
        "training.optimizer.lr": FloatParam(low=1e-4, high=1e-2, log=True),
        "data.input_chunk_length": ChoiceParam(values=["2x", "4x", "7x"]),
        "model.hidden_size": ChoiceParam(values=[64, 128, 256]),
        "training.batch_size": ChoiceParam(values=[32, 64, 128]),
        "model.dropout": FloatParam(low=0.0, high=0.4),
    }


class AshaConfig(StrictModel):
    """ASHA successive halving on val_loss, with epochs as the time attribute."""

    grace_period: int = Field(2, ge=1)
    """Epochs every trial gets before it can be stopped."""
    reduction_factor: float = Field(3.0, gt=1.0)
    max_epochs: int = Field(30, ge=1)
    """Epochs of a trial that survives every rung (the full budget)."""


class TuneConfig(StrictModel):
    """A two-stage study: broad TPE search, then TPE refinement around the top-k."""

    search_space: dict[str, ParamSpec] = Field(default_factory=default_search_space)
    """Dotted config paths -> ranges. input_chunk_length choices may be 'Nx' = N x output length."""
    budget: Literal["smoke", "small", "full"] | None = None
    """Preset that scales trials and epochs (overrides the counts below); unset uses them as given."""
    stage1_trials: int = Field(50, ge=1)
    """Broad stage: TPE with random startup trials."""
    stage2_trials: int = Field(20, ge=0)
    """Refinement stage on a space narrowed around the top_k of stage 1 (0 disables it)."""
    startup_trials: int = Field(10, ge=0)
    """Random trials before TPE takes over (stage 1)."""
    top_k: int = Field(5, ge=1)
    """Best stage-1 trials that define the refined space."""
    max_params: int | None = Field(None, ge=1)
    """Tune only the first N params in priority order; the rest stay at the config's values."""
    asha: AshaConfig = Field(default_factory=AshaConfig)
    max_concurrent_trials: int | None = Field(None, ge=1)
    """Upper bound on trials at once; unset fits as many as the cluster's CPUs/GPUs allow."""
    seed: int = 42
    metric: Literal["val_loss"] = "val_loss"
    mode: Literal["min"] = "min"
