"""Training: the per-worker loop, the TorchTrainer factory, checkpoints and inference."""

from tsdl.train.checkpointing import BestWeights, TrainState, load_best, load_last
from tsdl.train.inference import Evaluation, Forecast, evaluate_windows, forecast, load_forecaster
from tsdl.train.logger import MetricsLogger, NullLogger
from tsdl.train.runs import RunRecord
from tsdl.train.step import NonFiniteLoss
from tsdl.train.trainer import build_trainer, model_dims, resolve_storage_path
from tsdl.train.worker import EpochHook, train_loop_per_worker

__all__ = [
    "BestWeights",
    "EpochHook",
    "Evaluation",
    "Forecast",
    "MetricsLogger",
    "NonFiniteLoss",
    "NullLogger",
    "RunRecord",
    "TrainState",
    "build_trainer",
    "evaluate_windows",
    "forecast",
    "load_best",
    "load_forecaster",
    "load_last",
    "model_dims",
    "resolve_storage_path",
    "train_loop_per_worker",
]
