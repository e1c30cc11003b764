"""The unit that flows from the data layer into models and losses."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Batch"]


@dataclass(slots=True)
class Batch:
    """A batch of forecasting windows, already scaled.

    Attributes:
        past: ``[B, L, F_past]`` lookback inputs; channel 0 is the target, then past covariates,
            then the lookback values of known-future covariates (calendar features included).
        future: ``[B, H, F_future]`` known-future covariates over the horizon (``F_future`` may be 0).
        static: ``[B, S]`` static covariates per window's series (``S`` may be 0).
        target: ``[B, H]`` the values to forecast.
    """

    past: torch.Tensor
    future: torch.Tensor
    static: torch.Tensor
    target: torch.Tensor

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Batch:
        return Batch(
            past=self.past.to(device, non_blocking=non_blocking),
            future=self.future.to(device, non_blocking=non_blocking),
            static=self.static.to(device, non_blocking=non_blocking),
            target=self.target.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> Batch:
        return Batch(
            past=self.past.pin_memory(),
            future=self.future.pin_memory(),
            static=self.static.pin_memory(),
            target=self.target.pin_memory(),
        )

    def __len__(self) -> int:
        return int(self.target.shape[0])
