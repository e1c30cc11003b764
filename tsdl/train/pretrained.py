"""The run a fine-tuning run starts from: its checkpoint, a shape-checked weight load, its scalers.

A parent is a checkpoint directory written by `tsdl train` (it holds ``best.pt``: weights, config,
dims and scaler state). MLflow run ids are resolved to such a directory by the caller
(`tsdl.api`), so this layer stays independent of tracking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tsdl.config import TsdlConfig
from tsdl.data import PreparedData, prepare_data
from tsdl.errors import ConfigError, DataError
from tsdl.train.checkpointing import BEST_FILE, checkpoint_config, load_best

__all__ = [
    "ParentCheckpoint",
    "WeightLoad",
    "check_architecture",
    "load_parent",
    "load_weights",
    "prepare_finetune_data",
    "resolve_init_from",
    "resolve_parent",
]

# Shown per category in a mismatch error; the rest is counted.
_MAX_LISTED = 8


@dataclass(frozen=True)
class ParentCheckpoint:
    """The best weights of an earlier run, with what is needed to reuse them.

    Attributes:
        source: what the user passed (`finetune.init_from`): an MLflow run id or a directory.
        checkpoint_dir: local directory holding ``best.pt``.
        checkpoint_uri: where the checkpoint lives for lineage (``runs:/<id>/checkpoint`` or a path).
        run_id: the parent's MLflow run id, None for a bare checkpoint directory.
        weights: parameter name -> CPU tensor.
        config: the parent's resolved config.
        dims: the parent's `model_dims`.
        scaler_state: the parent's fitted scalers (`SeriesScalers.state_dict`).
        best_epoch / best_val_loss: where the weights come from in the parent's training.
    """

    source: str
    checkpoint_dir: Path
    checkpoint_uri: str
    run_id: str | None
    weights: dict[str, torch.Tensor] = field(repr=False)
    config: TsdlConfig = field(repr=False)
    dims: dict[str, int] = field(repr=False)
    scaler_state: dict[str, Any] = field(repr=False)
    best_epoch: int = 0
    best_val_loss: float = float("nan")


@dataclass(frozen=True)
class WeightLoad:
    """What a weight load did, per parameter name (for the log and the lineage record)."""

    loaded: list[str]
    reset: list[str]
    skipped: dict[str, str]
    """name -> why it kept its fresh init (shape differs, not in the parent)."""


def load_parent(
    checkpoint_dir: str | Path,
    *,
    source: str | None = None,
    run_id: str | None = None,
    uri: str | None = None,
) -> ParentCheckpoint:
    """Read ``best.pt`` of a finished run.

    Args:
        checkpoint_dir: local directory holding ``best.pt``.
        source: what the user passed (defaults to the directory).
        run_id: the parent's MLflow run id, when known.
        uri: the checkpoint's URI for lineage (defaults to the absolute directory).

    Raises:
        TrainingError: the directory holds no ``best.pt``.
    """
    directory = Path(checkpoint_dir).expanduser().resolve()
    best = load_best(directory)
    return ParentCheckpoint(
        source=source or str(directory),
        checkpoint_dir=directory,
        checkpoint_uri=uri or str(directory),
        run_id=run_id,
        weights={k: v.detach().cpu() for k, v in best.model.items()},
        config=checkpoint_config(best, directory),
        dims=dict(best.dims),
        scaler_state=best.scaler_state,
        best_epoch=int(best.epoch),
        best_val_loss=float(best.val_loss),
    )


def resolve_parent(
    init_from: str, *, download: Callable[[str], tuple[Path, str]] | None = None
) -> ParentCheckpoint:
    """`finetune.init_from` -> the parent: a checkpoint directory, else an MLflow run id.

    Args:
        init_from: a directory holding ``best.pt``, or a run id.
        download: ``run_id -> (local checkpoint dir, checkpoint URI)``; None accepts directories only.

    Raises:
        ConfigError: neither an existing directory nor (with `download`) a run id.
    """
    path = Path(init_from).expanduser()
    if path.is_dir():
        if not (path / BEST_FILE).is_file():
            raise ConfigError(
                f"finetune.init_from {init_from!r} is a directory without {BEST_FILE}",
                hint="pass a checkpoint directory of `tsdl train` (printed as 'checkpoint:') or an MLflow run id",
            )
        return load_parent(path, source=init_from)
    if download is None or "/" in init_from or path.exists():
        raise ConfigError(
            f"finetune.init_from {init_from!r} is not a checkpoint directory",
            hint="pass a directory holding best.pt, or an MLflow run id through `tsdl train --init-from`",
        )
    local, uri = download(init_from)
    return load_parent(local, source=init_from, run_id=init_from, uri=uri)


def resolve_init_from(
    config: TsdlConfig,
    init_from: str | None = None,
    *,
    download: Callable[[str], tuple[Path, str]] | None = None,
) -> tuple[TsdlConfig, ParentCheckpoint | None]:
    """Put ``--init-from`` into the config (tracked, resumable, reproducible) and resolve the parent.

    Args:
        config: the run's config; `finetune.init_from` is used when `init_from` is None.
        init_from: a run id or checkpoint directory given on the command line.
        download: see `resolve_parent`.

    Returns:
        ``(config, parent)``; parent is None when the run trains from scratch.

    Raises:
        ConfigError: ``scalers: parent`` without a parent, or an unresolvable `init_from`.
    """
    if init_from is not None:
        raw = config.model_dump(mode="json")
        raw["finetune"]["init_from"] = init_from
        config = TsdlConfig.model_validate(raw)
    source = config.finetune.init_from
    if source is None:
        if config.finetune.scalers == "parent":
            raise ConfigError(
                "finetune.scalers is 'parent' but there is no parent run",
                hint="pass --init-from RUN_ID|CHECKPOINT (or set finetune.init_from), or use scalers: refit",
            )
        return config, None
    return config, resolve_parent(source, download=download)


def load_weights(
    model: torch.nn.Module,
    weights: dict[str, torch.Tensor],
    *,
    strict: bool,
    reset: Iterable[str] = (),
    parent: str = "parent checkpoint",
) -> WeightLoad:
    """Copy matching parent tensors into `model`, after checking every name and shape.

    Args:
        model: the freshly built (unwrapped) model.
        weights: parent state dict.
        strict: raise on any missing or mis-shaped tensor; False keeps those at their fresh init.
        reset: names that keep their fresh init on purpose (``finetune.reset_head``).
        parent: how to name the parent in errors (its run id or path).

    Raises:
        ConfigError: `strict` and the parent does not fit; the message lists every mismatch.
    """
    own = model.state_dict()
    reset_set = set(reset)
    mismatched = {
        name: f"parent {list(weights[name].shape)} vs model {list(tensor.shape)}"
        for name, tensor in own.items()
        if name in weights and name not in reset_set and weights[name].shape != tensor.shape
    }
    missing = [n for n in own if n not in weights and n not in reset_set]
    unexpected = [n for n in weights if n not in own]
    if strict and (mismatched or missing or unexpected):
        raise ConfigError(
            f"{parent} does not fit this model: " + _describe(mismatched, missing, unexpected),
            hint="make model/data/loss settings match the parent (horizon, features, loss width), set "
            "finetune.reset_head=true when only the head differs, or finetune.strict=false to load only "
            "the matching layers",
        )
    skipped = dict(mismatched) | {n: "not in the parent" for n in missing}
    loaded = [n for n in own if n in weights and n not in reset_set and n not in mismatched]
    with torch.no_grad():
        for name in loaded:
            own[name].copy_(weights[name])
    return WeightLoad(loaded=loaded, reset=[n for n in own if n in reset_set], skipped=skipped)


def prepare_finetune_data(config: TsdlConfig, parent: ParentCheckpoint | None) -> PreparedData:
    """The run's data, scaled per `finetune.scalers` (refit: on its own train split only).

    Without a parent this is `prepare_data(config)`.

    Raises:
        DataError: ``scalers: parent`` but the data has series or columns the parent never saw.
    """
    if parent is None or config.finetune.scalers == "refit":
        return prepare_data(config)
    try:
        return prepare_data(config, fit_scalers=False, scaler_state=parent.scaler_state)
    except DataError as exc:
        raise DataError(
            f"finetune.scalers=parent: the parent's scalers ({parent.source}) do not cover this data: {exc.message}",
            hint="use finetune.scalers: refit (the default for new series; fitted on this run's train split)",
        ) from None


def check_architecture(config: TsdlConfig, parent: ParentCheckpoint) -> None:
    """Different architectures never share weights: fail before naming every tensor.

    Raises:
        ConfigError: `model.name` differs from the parent's.
    """
    if config.model.name != parent.config.model.name:
        raise ConfigError(
            f"finetune.init_from {parent.source!r} is a {parent.config.model.name!r} model, this config "
            f"builds {config.model.name!r}",
            hint=f"set model.name: {parent.config.model.name} (and its settings) to fine-tune that run",
        )


def _describe(mismatched: dict[str, str], missing: list[str], unexpected: list[str]) -> str:
    parts = []
    if mismatched:
        parts.append(
            f"{len(mismatched)} with another shape ({_listing([f'{k}: {v}' for k, v in mismatched.items()])})"
        )
    if missing:
        parts.append(f"{len(missing)} missing from the parent ({_listing(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} only in the parent ({_listing(unexpected)})")
    return "; ".join(parts)


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")
