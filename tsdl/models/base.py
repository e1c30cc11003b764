"""The forecaster contract: three tensors in, ``[B, H, n_outputs]`` raw head values out.

Models take ``past``, ``future`` and ``static`` rather than a :class:`~tsdl.data.batch.Batch` so
DDP wraps a plain ``forward(*tensors)``. The width ``n_outputs`` comes from the loss
(:attr:`tsdl.losses.BaseLoss.n_outputs`); the model never interprets it.

Every architecture implements :meth:`BaseForecaster.forecast`; ``forward`` wraps it with the
optional instance normalization (``model.instance_norm``): normalize the lookback's target
channel, forecast in normalized units, and let the loss map every head parameter back to data
units (:meth:`tsdl.losses.BaseLoss.rescale`), so the raw output always is in data units.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from tsdl.errors import ConfigError
from tsdl.models.normalization import InstanceNorm

__all__ = ["BaseForecaster"]


class BaseForecaster(torch.nn.Module, ABC):
    """Maps a lookback window (plus covariates) to ``n_outputs`` values per horizon step.

    Args:
        config: the architecture's ``model`` section (hyperparameters).
        input_chunk_length: lookback length ``L``.
        output_chunk_length: horizon ``H``.
        n_past_features: ``F_past`` channels of ``past``; channel 0 is the target.
        n_future_features: ``F_fut`` known-future covariates (may be 0).
        n_static: ``S`` static covariates (may be 0).
        n_outputs: values per horizon step, ``loss.n_outputs``.
    """

    name: ClassVar[str]

    def __init__(
        self,
        config: Any,
        *,
        input_chunk_length: int,
        output_chunk_length: int,
        n_past_features: int,
        n_future_features: int,
        n_static: int,
        n_outputs: int,
    ) -> None:
        super().__init__()
        for field, value, low in (
            ("input_chunk_length", input_chunk_length, 1),
            ("output_chunk_length", output_chunk_length, 1),
            ("n_past_features", n_past_features, 1),
            ("n_future_features", n_future_features, 0),
            ("n_static", n_static, 0),
            ("n_outputs", n_outputs, 1),
        ):
            if int(value) < low:
                raise ConfigError(
                    f"model {self.name!r} needs {field} >= {low}, got {value}",
                    hint="check data.input_chunk_length / data.output_chunk_length and covariates",
                )
        self.config = config
        self.input_chunk_length = int(input_chunk_length)
        self.output_chunk_length = int(output_chunk_length)
        self.n_past_features = int(n_past_features)
        self.n_future_features = int(n_future_features)
        self.n_static = int(n_static)
        self.n_outputs = int(n_outputs)
        mode = getattr(config, "instance_norm", "none")
        self.instance_norm = InstanceNorm(mode) if mode != "none" else None
        self._rescale: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None

    def use_head(self, rescale: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
        """Set the loss's ``rescale(raw, loc, scale)``, which maps normalized outputs to data units."""
        self._rescale = rescale

    def forward(self, past: Tensor, future: Tensor, static: Tensor) -> Tensor:
        """:meth:`forecast`, inside the instance normalization when ``model.instance_norm`` is set."""
        if self.instance_norm is None:
            return self.forecast(past, future, static)
        if self._rescale is None:
            raise ConfigError(
                f"model {self.name!r} uses model.instance_norm={self.instance_norm.mode!r} but was "
                "built without its loss, which maps the normalized outputs back",
                hint="build it with build_model(..., loss=loss)",
            )
        normalized, loc, scale = self.instance_norm(past)
        return self._rescale(self.forecast(normalized, future, static), loc, scale)

    @abstractmethod
    def forecast(self, past: Tensor, future: Tensor, static: Tensor) -> Tensor:
        """Forecast the horizon (the architecture itself).

        Args:
            past: ``[B, L, F_past]`` lookback; channel 0 is the target.
            future: ``[B, H, F_fut]`` known-future covariates (``F_fut`` may be 0).
            static: ``[B, S]`` static covariates (``S`` may be 0).

        Returns:
            ``[B, H, n_outputs]`` raw values for the loss's head.
        """

    def _reshape_head(self, flat: Tensor) -> Tensor:
        """``[B, H * n_outputs]`` -> ``[B, H, n_outputs]`` (the layout every head uses)."""
        return flat.reshape(flat.shape[0], self.output_chunk_length, self.n_outputs)

    def _invalid(self, field: str, value: object, fix: str) -> ConfigError:
        """A ConfigError naming ``model.<field>`` and the fix."""
        return ConfigError(
            f"model.{field}={value!r} is invalid for {self.name!r}: {fix}",
            hint=f"change model.{field} in the config",
        )
