"""The root config: one YAML file describes a whole experiment."""

from __future__ import annotations

from pydantic import Field, model_validator

from tsdl.config.base import StrictModel
from tsdl.config.data import DataConfig
from tsdl.config.deploy import DeployConfig
from tsdl.config.finetune import FinetuneConfig
from tsdl.config.loss import NONNEGATIVE_TARGET_LOSSES, LossConfig
from tsdl.config.model import LOG_SCALE_LOSSES, DLinearConfig, ModelConfig
from tsdl.config.names import Name
from tsdl.config.tracking import TrackingConfig
from tsdl.config.training import ResourcesConfig, TrainingConfig
from tsdl.config.tune import TuneConfig

__all__ = ["ExperimentConfig", "TsdlConfig"]


class ExperimentConfig(StrictModel):
    """Names and tags that identify runs in MLflow and Ray."""

    name: Name = "tsdl"
    """Starts every run and study name (a directory under resources.storage_path):
    tsdl.config.names.NAME_PATTERN."""
    group: str | None = None
    """experiment_group tag, to compare runs across experiments."""
    tags: dict[str, str] = Field(default_factory=dict)


class TsdlConfig(StrictModel):
    """Everything tsdl needs: sections follow the flow config -> data -> model -> train -> tune."""

    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=DLinearConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)

    @model_validator(mode="after")
    def _instance_norm_fits_the_loss(self) -> TsdlConfig:
        if self.model.instance_norm != "none" and self.loss.name in LOG_SCALE_LOSSES:
            raise ValueError(
                f"model.instance_norm={self.model.instance_norm!r} cannot be undone for "
                f"loss.name={self.loss.name!r} (a log/count-scale head); set model.instance_norm: none"
            )
        return self

    @model_validator(mode="after")
    def _loss_fits_the_scaled_target(self) -> TsdlConfig:
        """Fail in milliseconds, not after Ray retried a worker that can never succeed."""
        if self.loss.name in NONNEGATIVE_TARGET_LOSSES and self.data.scaler != "none":
            raise ValueError(
                f"loss.name {self.loss.name!r} needs a non-negative target, but data.scaler "
                f"{self.data.scaler!r} can make scaled targets negative: set data.scaler: none "
                "(or use loss mse, mae or a probabilistic loss with this scaler)"
            )
        return self
