"""Checkpoint layout: one directory per report holding the last state and the best weights so far.

Reporting both in every checkpoint lets Ray keep a single checkpoint (the latest) while "best" and
"last" are never lost: ``last.pt`` resumes training, ``best.pt`` is what evaluation and predict use.

Checkpoints travel (MLflow artifacts, ``--init-from``, shared storage), so they hold only tensors
and plain values (config and scaler state as JSON-like dicts, RNG states as tensors) and are read
with ``torch.load(weights_only=True)``: unpickling a file can run arbitrary code, and a checkpoint
that needs more than that is refused, never executed. A corrupt or truncated file is a one-line
:class:`~tsdl.errors.TrainingError`.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from tsdl.config import TsdlConfig
from tsdl.errors import TrainingError

__all__ = [
    "BEST_FILE",
    "LAST_FILE",
    "META_FILE",
    "BestWeights",
    "TrainState",
    "checkpoint_config",
    "checkpoint_dir_name",
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


def checkpoint_dir_name(epoch: int) -> str:
    """The directory of the checkpoint reported after `epoch`: names sort by epoch, on any storage.

    Ray Train and the in-process path both use it, so either can resume the other's run.
    """
    return f"checkpoint_epoch-{epoch:06d}"


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
    """``last.pt`` of ``directory`` (read with ``weights_only=True``)."""
    return TrainState(**_load(directory / LAST_FILE, TrainState))


def load_best(directory: Path) -> BestWeights:
    """``best.pt`` of ``directory`` (read with ``weights_only=True``)."""
    return BestWeights(**_load(directory / BEST_FILE, BestWeights))


def checkpoint_config(best: BestWeights, directory: Path) -> TsdlConfig:
    """The validated config stored with ``best``; an incompatible one is a one-line error."""
    try:
        return TsdlConfig.model_validate(best.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "<root>"
        raise TrainingError(
            f"checkpoint {directory / BEST_FILE} holds a config this tsdl version cannot read "
            f"({where}: {first['msg']})",
            hint="retrain with this version, or use the tsdl version that wrote it",
        ) from None


def _load(path: Path, kind: type) -> dict[str, Any]:
    if not path.exists():
        raise TrainingError(
            f"checkpoint file {path} does not exist",
            hint="point --checkpoint at a directory written by `tsdl train` (it holds best.pt and last.pt)",
        )
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; a cut or garbled file is not one
        raise _corrupt(path, "not a complete zip archive")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses any object that is not a tensor or a plain value: never run it.
        found = [line.strip() for line in str(exc).splitlines() if "Unsupported global" in line]
        raise TrainingError(
            f"checkpoint {path} holds objects other than tensors and plain values, refused unread "
            f"(loading it could run code){': ' + found[0][:160] if found else ''}",
            hint="use a checkpoint written by `tsdl train` of this version; never load files you do not trust",
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        first = str(exc).strip().splitlines()
        raise _corrupt(path, f"{type(exc).__name__}: {first[0][:160] if first else 'no detail'}") from None
    expected = {f.name for f in fields(kind)}
    required = {f.name for f in fields(kind) if f.default is MISSING and f.default_factory is MISSING}
    if not isinstance(state, dict) or not required <= set(state) or not set(state) <= expected:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise TrainingError(
            f"checkpoint {path} is not a tsdl {kind.__name__} (holds {keys})",
            hint="point --checkpoint at a directory written by `tsdl train`",
        )
    return state


def _corrupt(path: Path, reason: str) -> TrainingError:
    return TrainingError(
        f"checkpoint {path} is corrupt or truncated ({reason})",
        hint="copy the checkpoint again (an interrupted download or a full disk truncates it)",
    )
