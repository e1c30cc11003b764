"""Checkpoint layout: one directory per report holding the last state and the best weights so far.

Reporting both in every checkpoint lets Ray keep a single checkpoint (the latest) while "best" and
"last" are never lost: ``last.pt`` resumes training, ``best.pt`` is what evaluation and predict use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tsdl.errors import TrainingError

__all__ = [
    "BEST_FILE",
    "LAST_FILE",
    "META_FILE",
    "BestWeights",
    "TrainState",
    "load_best",
    "load_last",
    "save_checkpoint",
]

LAST_FILE = "last.pt"
BEST_FILE = "best.pt"
META_FILE = "meta.json"


@dataclass
class TrainState:
    """Everything needed to continue training exactly where it stopped."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    grad_scaler: dict[str, Any]
    early_stopping: dict[str, Any]
    rng: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    global_step: int = 0


@dataclass
class BestWeights:
    """The weights with the lowest validation loss so far, with what is needed to use them."""

    epoch: int
    val_loss: float
    model: dict[str, torch.Tensor]
    config: dict[str, Any]
    dims: dict[str, int]
    scaler_state: dict[str, Any]


def save_checkpoint(directory: Path, *, last: TrainState, best: BestWeights | None) -> None:
    """Write ``last.pt`` (+ ``best.pt`` when known) and a small JSON summary into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(last.__dict__, directory / LAST_FILE)
    if best is not None:
        torch.save(best.__dict__, directory / BEST_FILE)
    meta = {"epoch": last.epoch, "best_epoch": best.epoch if best else None,
            "best_val_loss": best.val_loss if best else None}
    (directory / META_FILE).write_text(json.dumps(meta))


def load_last(directory: Path) -> TrainState:
    return TrainState(**_load(directory / LAST_FILE))


def load_best(directory: Path) -> BestWeights:
    return BestWeights(**_load(directory / BEST_FILE))


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise TrainingError(
            f"checkpoint file {path} does not exist",
            hint="point --checkpoint at a directory written by `tsdl train` (it holds best.pt and last.pt)",
        )
    # Our own files: they hold optimizer/RNG state (numpy arrays, tuples), not just tensors.
    return torch.load(path, map_location="cpu", weights_only=False)
