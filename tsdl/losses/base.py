"""The loss contract: a loss owns the output head, so any model works with any loss.

A model produces raw values ``[B, H, n_outputs]``; the loss says how many outputs it needs
(``n_outputs``), maps them to distribution parameters (``domain_map``: softplus scales, sigmoid
gates, non-crossing quantiles), scores them against the target (``forward``) and turns them into
forecasts (``point``, ``quantiles``). This mirrors NeuralForecast's ``outputsize_multiplier``.

With instance normalization (``model.instance_norm``) the network forecasts a normalized window;
the loss owns the way back (``rescale``): it maps *every* raw output to data units as its
distribution requires (location and scale, every quantile), as NeuralForecast's
``scale_decouple`` does. Losses whose head lives on a log/count scale cannot be rescaled by a
location-scale map and refuse instance normalization (``supports_instance_norm``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from tsdl.config.loss import LossConfig
from tsdl.errors import ConfigError, TrainingError

__all__ = ["BaseLoss", "softplus_inverse"]


def softplus_inverse(y: Tensor) -> Tensor:
    """``x`` with ``softplus(x) == y`` for ``y > 0`` (stable for small and large ``y``)."""
    y = y.clamp_min(1e-30)
    return y + torch.log(-torch.expm1(-y))


class BaseLoss(torch.nn.Module, ABC):
    """A training loss plus the output head it implies.

    Class attributes:
        name: the ``loss.name`` this class is registered under.
        n_outputs: output channels the model must produce per horizon step.
        is_probabilistic: whether ``quantiles`` returns a forecast distribution.
        requires_nonnegative_target: the loss is undefined for negative targets.
        supports_instance_norm: ``rescale`` maps normalized outputs back (location-scale heads).
    """

    name: ClassVar[str]
    n_outputs: int = 1
    is_probabilistic: ClassVar[bool] = False
    requires_nonnegative_target: ClassVar[bool] = False
    supports_instance_norm: ClassVar[bool] = True

    @classmethod
    def from_config(cls, config: LossConfig) -> BaseLoss:
        """Build from the ``loss`` section; losses with settings override this."""
        return cls()

    def domain_map(self, pred: Tensor) -> Tensor | tuple[Tensor, ...]:
        """Map raw model outputs to the parameters of the head (identity for point losses).

        Args:
            pred: ``[B, H, n_outputs]`` raw model output.

        Returns:
            The head's parameters, each ``[B, H]`` (or ``[B, H, Q]`` for quantiles).
        """
        return pred[..., 0]

    def rescale(self, raw: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """Raw outputs for a window normalized as ``(y - loc) / scale`` -> raw outputs for ``y``.

        The default serves one-output location heads (``mse``, ``mae``): ``raw * scale + loc``.
        Heads with more parameters map each one as their distribution requires.

        Args:
            raw: ``[B, H, n_outputs]`` raw output in normalized units.
            loc, scale: ``[B, 1]`` per-window location and scale (> 0).

        Returns:
            ``[B, H, n_outputs]`` raw output in data units.
        """
        if not self.supports_instance_norm:
            raise ConfigError(
                f"loss.name={self.name!r} predicts on a log/count scale, which a per-window "
                "location-scale normalization cannot map back",
                hint="set model.instance_norm: none",
            )
        return raw * scale.unsqueeze(-1) + loc.unsqueeze(-1)

    @abstractmethod
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Score a forecast.

        Args:
            pred: ``[B, H, n_outputs]`` raw model output.
            target: ``[B, H]`` observed values.

        Returns:
            A scalar: the loss averaged over batch and horizon.
        """

    @abstractmethod
    def point(self, pred: Tensor) -> Tensor:
        """The point forecast (mean or median, see the subclass) on the model's scale.

        Args:
            pred: ``[B, H, n_outputs]`` raw model output.

        Returns:
            ``[B, H]``.
        """

    def quantiles(self, pred: Tensor, levels: Sequence[float]) -> Tensor | None:
        """Forecast quantiles at ``levels``; ``None`` for point losses.

        Args:
            pred: ``[B, H, n_outputs]`` raw model output.
            levels: quantile levels, each in ``(0, 1)``.

        Returns:
            ``[B, H, Q]`` with ``Q = len(levels)``, or ``None``.
        """
        return None

    def _check(self, pred: Tensor, target: Tensor) -> None:
        """Fail loudly on a shape mismatch or on a target outside the loss's domain."""
        if pred.dim() != 3 or pred.shape[-1] != self.n_outputs or pred.shape[:2] != target.shape:
            raise TrainingError(
                f"loss {self.name!r} expects pred [B, H, {self.n_outputs}] and target [B, H], "
                f"got pred {list(pred.shape)} and target {list(target.shape)}",
                hint="build the model with n_outputs=loss.n_outputs",
            )
        if self.requires_nonnegative_target and bool((target < 0).any()):
            raise TrainingError(
                f"loss {self.name!r} needs non-negative targets, got a minimum of "
                f"{float(target.min()):.4g}",
                hint="set data.scaler to 'none' (or a scale-only scaler) or pick another loss.name",
            )
