"""Training loss; it also decides the output head (point, quantiles or a distribution)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tsdl.config.base import StrictModel

__all__ = ["NONNEGATIVE_TARGET_LOSSES", "LossConfig", "LossName"]

LossName = Literal[
    "mae",
    "mse",
    "log_mse",
    "pinball",
    "gaussian_nll",
    "crps_gaussian",
    "crps_quantile",
    "tweedie",
    "zinb",
]

NONNEGATIVE_TARGET_LOSSES = frozenset({"log_mse", "tweedie", "zinb"})
"""Losses undefined for a negative target (their ``requires_nonnegative_target``); a scaler that
centres the target (standard, robust) or can push val/test below zero (minmax) breaks them."""


class LossConfig(StrictModel):
    """Loss by name; quantile and Tweedie settings apply only to those losses."""

    name: LossName = "mse"
    """mae, mse, log_mse: point head; pinball, crps_quantile: quantile head;
    gaussian_nll, crps_gaussian: Gaussian head; tweedie: positive mean; zinb: zero-inflated NB."""
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    """Quantile levels of the quantile head, each in (0, 1)."""
    tweedie_power: float = Field(1.5, gt=1.0, lt=2.0)
    """Tweedie variance power p in (1, 2) (compound Poisson-gamma)."""

    @field_validator("quantiles")
    @classmethod
    def _quantiles_in_unit_interval(cls, value: list[float]) -> list[float]:
        bad = [q for q in value if not 0.0 < q < 1.0]
        if bad or not value:
            raise ValueError(f"quantiles must be non-empty and strictly between 0 and 1, got {value}")
        return sorted(set(value))
