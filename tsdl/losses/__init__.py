"""Losses and the output heads they imply (point, quantiles, Gaussian, Tweedie, ZINB).

``build_loss(config.loss)`` returns a :class:`BaseLoss`; build the model with
``n_outputs=loss.n_outputs`` and any architecture works with any loss.
"""

from tsdl.losses.base import BaseLoss
from tsdl.losses.count import TweedieLoss, ZINBLoss
from tsdl.losses.gaussian import CRPSGaussianLoss, GaussianNLLLoss
from tsdl.losses.point import LogMSELoss, MAELoss, MSELoss
from tsdl.losses.quantile import CRPSQuantileLoss, PinballLoss
from tsdl.losses.registry import LOSSES, build_loss

__all__ = [
    "LOSSES",
    "BaseLoss",
    "CRPSGaussianLoss",
    "CRPSQuantileLoss",
    "GaussianNLLLoss",
    "LogMSELoss",
    "MAELoss",
    "MSELoss",
    "PinballLoss",
    "TweedieLoss",
    "ZINBLoss",
    "build_loss",
]
