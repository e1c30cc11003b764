"""The loss contract: a loss owns the output head, so any model works with any loss.

A model produces raw values ``[B, H, n_outputs]``; the loss says how many outputs it needs
(``n_outputs``), maps them to distribution parameters (``domain_map``: softplus scales, sigmoid
gates, non-crossing quantiles), scores them against the target (``forward``) and turns them into
forecasts (``point``, ``quantiles``). This mirrors NeuralForecast's ``outputsize_multiplier``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from tsdl.config.loss import LossConfig
from tsdl.errors import TrainingError

__all__ = ["BaseLoss"]


class BaseLoss(torch.nn.Module, ABC):
    """A training loss plus the output head it implies.

    Class attributes:
        name: the ``loss.name`` this class is registered under.
        n_outputs: output channels the model must produce per horizon step.
        is_probabilistic: whether ``quantiles`` returns a forecast distribution.
        requires_nonnegative_target: the loss is undefined for negative targets.
    """

    name: ClassVar[str]
    n_outputs: int = 1
    is_probabilistic: ClassVar[bool] = False
    requires_nonnegative_target: ClassVar[bool] = False

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
