"""``loss.name`` -> loss class, and the factory that turns a LossConfig into a loss."""

from __future__ import annotations

from tsdl.config.loss import LossConfig
from tsdl.errors import ConfigError
from tsdl.losses.base import BaseLoss
from tsdl.losses.count import TweedieLoss, ZINBLoss
from tsdl.losses.gaussian import CRPSGaussianLoss, GaussianNLLLoss
from tsdl.losses.point import LogMSELoss, MAELoss, MSELoss
from tsdl.losses.quantile import CRPSQuantileLoss, PinballLoss

__all__ = ["LOSSES", "build_loss"]

LOSSES: dict[str, type[BaseLoss]] = {
    cls.name: cls
    for cls in (
        MAELoss,
        MSELoss,
        LogMSELoss,
        PinballLoss,
        GaussianNLLLoss,
        CRPSGaussianLoss,
        CRPSQuantileLoss,
        TweedieLoss,
        ZINBLoss,
    )
}
"""Every loss, keyed by ``LossConfig.name``."""


def build_loss(config: LossConfig) -> BaseLoss:
    """Instantiate the loss a config names, with its quantile levels or Tweedie power.

    Args:
        config: the ``loss`` section.

    Returns:
        The loss module; its ``n_outputs`` is the width the model must produce.
    """
    cls = LOSSES.get(config.name)
    if cls is None:
        raise ConfigError(
            f"loss.name={config.name!r} is not implemented",
            hint=f"choose one of {sorted(LOSSES)}",
        )
    return cls.from_config(config)
