"""``model.name`` -> architecture, and the factory that sizes a model for a dataset and loss."""

from __future__ import annotations

from tsdl.config.model import ModelConfig
from tsdl.errors import ConfigError
from tsdl.models.base import BaseForecaster
from tsdl.models.dlinear import DLinear
from tsdl.models.nhits import NHiTS
from tsdl.models.patchtst import PatchTST
from tsdl.models.rnn import RNN

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
    n_outputs: int,
) -> BaseForecaster:
    """Instantiate the architecture ``config.name`` for the given window and head sizes.

    Args:
        config: the ``model`` section.
        input_chunk_length: lookback length ``L``.
        output_chunk_length: horizon ``H``.
        n_past_features: ``F_past`` (channel 0 is the target).
        n_future_features: ``F_fut`` (may be 0).
        n_static: ``S`` (may be 0).
        n_outputs: ``loss.n_outputs``.

    Returns:
        A module mapping ``(past, future, static)`` to ``[B, H, n_outputs]``.
    """
    cls = MODELS.get(config.name)
    if cls is None:
        raise ConfigError(
            f"model.name={config.name!r} is not implemented", hint=f"choose one of {sorted(MODELS)}"
        )
    return cls(
        config,
        input_chunk_length=input_chunk_length,
        output_chunk_length=output_chunk_length,
        n_past_features=n_past_features,
        n_future_features=n_future_features,
        n_static=n_static,
        n_outputs=n_outputs,
    )
