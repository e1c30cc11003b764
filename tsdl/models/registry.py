"""``model.name`` -> architecture, and the factory that sizes a model for a dataset and loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tsdl.config.model import ModelConfig
from tsdl.errors import ConfigError
from tsdl.models.base import BaseForecaster
from tsdl.models.dlinear import DLinear
from tsdl.models.nhits import NHiTS
from tsdl.models.patchtst import PatchTST
from tsdl.models.rnn import RNN

if TYPE_CHECKING:
    from tsdl.losses import BaseLoss

__all__ = ["MODELS", "build_model"]

MODELS: dict[str, type[BaseForecaster]] = {cls.name: cls for cls in (DLinear, NHiTS, RNN, PatchTST)}
"""Every architecture, keyed by ``ModelConfig.name``."""


def build_model(
    config: ModelConfig,
    *,
    input_chunk_length: int,
    output_chunk_length: int,
    n_past_features: int,
    n_future_features: int,
    n_static: int,
    n_outputs: int | None = None,
    loss: BaseLoss | None = None,
) -> BaseForecaster:
    """Instantiate the architecture ``config.name`` for the given window and head sizes.

    Args:
        config: the ``model`` section.
        input_chunk_length: lookback length ``L``.
        output_chunk_length: horizon ``H``.
        n_past_features: ``F_past`` (channel 0 is the target).
        n_future_features: ``F_fut`` (may be 0).
        n_static: ``S`` (may be 0).
        n_outputs: ``loss.n_outputs`` (taken from ``loss`` when unset).
        loss: the training loss; needed with ``model.instance_norm``, since it maps the
            normalized outputs back to data units.

    Returns:
        A module mapping ``(past, future, static)`` to ``[B, H, n_outputs]``.
    """
    cls = MODELS.get(config.name)
    if cls is None:
        raise ConfigError(
            f"model.name={config.name!r} is not implemented", hint=f"choose one of {sorted(MODELS)}"
        )
    if n_outputs is None and loss is None:
        raise ConfigError("build_model needs n_outputs or loss", hint="pass loss=build_loss(config.loss)")
    model = cls(
        config,
        input_chunk_length=input_chunk_length,
        output_chunk_length=output_chunk_length,
        n_past_features=n_past_features,
        n_future_features=n_future_features,
        n_static=n_static,
        n_outputs=loss.n_outputs if n_outputs is None else n_outputs,
    )
    if loss is not None:
        model.use_head(loss.rescale)
    elif model.instance_norm is not None:
        raise ConfigError(
            f"model.instance_norm={config.instance_norm!r} needs the loss to map outputs back",
            hint="build the model with build_model(..., loss=loss)",
        )
    return model
