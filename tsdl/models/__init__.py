"""The model zoo: every architecture maps ``(past, future, static)`` to ``[B, H, n_outputs]``.

``build_model(config.model, ..., n_outputs=loss.n_outputs)``; see :class:`BaseForecaster`.
"""

from tsdl.models.base import BaseForecaster
from tsdl.models.dlinear import DLinear
from tsdl.models.registry import MODELS, build_model

__all__ = ["MODELS", "BaseForecaster", "DLinear", "build_model"]
