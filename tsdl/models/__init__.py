"""The model zoo: every architecture maps ``(past, future, static)`` to ``[B, H, n_outputs]``.

``build_model(config.model, ..., loss=loss)``; see :class:`BaseForecaster`.
"""

from tsdl.models.base import BaseForecaster
from tsdl.models.dlinear import DLinear
from tsdl.models.nhits import NHiTS
from tsdl.models.patchtst import PatchTST
from tsdl.models.registry import MODELS, build_model
from tsdl.models.rnn import RNN

__all__ = [
    "MODELS",
    "RNN",
    "BaseForecaster",
    "DLinear",
    "NHiTS",
    "PatchTST",
    "build_model",
]
