"""Configuration: pydantic models with extra="forbid"; YAML is their serialized form."""

from tsdl.config.data import CovariatesConfig, DataConfig, SplitConfig, SyntheticDataConfig
from tsdl.config.deploy import DeployConfig
from tsdl.config.finetune import FinetuneConfig
from tsdl.config.loader import (
    apply_overrides,
    config_hash,
    dump_config,
    load_config,
    parse_config,
    to_flat_dict,
)
from tsdl.config.loss import LossConfig
from tsdl.config.model import DLinearConfig, ModelConfig, NHiTSConfig, PatchTSTConfig, RNNConfig
from tsdl.config.root import ExperimentConfig, TsdlConfig
from tsdl.config.template import commented_default_yaml
from tsdl.config.tracking import TrackingConfig
from tsdl.config.training import ResourcesConfig, TrainingConfig
from tsdl.config.tune import TuneConfig

__all__ = [
    "CovariatesConfig",
    "DLinearConfig",
    "DataConfig",
    "DeployConfig",
    "ExperimentConfig",
    "FinetuneConfig",
    "LossConfig",
    "ModelConfig",
    "NHiTSConfig",
    "PatchTSTConfig",
    "RNNConfig",
    "ResourcesConfig",
    "SplitConfig",
    "SyntheticDataConfig",
    "TrackingConfig",
    "TrainingConfig",
    "TsdlConfig",
    "TuneConfig",
    "apply_overrides",
    "commented_default_yaml",
    "config_hash",
    "dump_config",
    "load_config",
    "parse_config",
    "to_flat_dict",
]
