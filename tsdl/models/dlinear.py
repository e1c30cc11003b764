"""DLinear (Zeng et al., "Are Transformers Effective for Time Series Forecasting?", AAAI 2023).

The lookback is split into a trend (moving average with edge padding) and a seasonal remainder;
one linear layer per component maps the lookback to the horizon, and the two are summed. As in
the paper the model is channel-independent and reads only the target channel; covariates, when
present, enter through a zero-initialized :class:`CovariateProjection` added to the output.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tsdl.config.model import DLinearConfig
from tsdl.models.base import BaseForecaster
from tsdl.models.covariates import CovariateProjection

__all__ = ["DLinear", "SeriesDecomposition"]


class SeriesDecomposition(torch.nn.Module):
    """Trend = moving average over an edge-padded series; seasonal = series - trend.

    Padding repeats the first and last values so the trend has the input's length and is not
    pulled towards zero at the edges (the paper's ``moving_avg`` block; an even kernel pads one
    more step at the end so lengths still match).

    On CPU the average comes from one cumulative sum (the difference of two prefix sums), about
    3x cheaper than ``AvgPool1d`` over the padded copy and the same to float precision; the
    series' first value is subtracted first and added back, so a large level costs no precision
    in the running sum. On CUDA ``cumsum`` has no deterministic kernel (``training.deterministic``
    would raise), so there it is ``avg_pool1d``.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Args: x ``[B, L]``. Returns: ``(seasonal, trend)``, each ``[B, L]``."""
        trend = self._by_cumsum(x) if self.uses_cumsum(x) else self._by_pooling(x)
        return x - trend, trend

    @staticmethod
    def uses_cumsum(x: Tensor) -> bool:
        """The cumulative-sum path runs on CPU only (see the class docstring)."""
        return x.device.type == "cpu"

    def _padded(self, x: Tensor) -> Tensor:
        k = self.kernel_size
        return torch.cat([x[:, :1].expand(-1, (k - 1) // 2), x, x[:, -1:].expand(-1, k // 2)], dim=1)

    def _by_cumsum(self, x: Tensor) -> Tensor:
        k, level = self.kernel_size, x[:, :1]
        sums = torch.nn.functional.pad(self._padded(x - level).cumsum(dim=1), (1, 0))
        return (sums[:, k:] - sums[:, :-k]) / k + level

    def _by_pooling(self, x: Tensor) -> Tensor:
        return torch.nn.functional.avg_pool1d(self._padded(x).unsqueeze(1), self.kernel_size, stride=1).squeeze(1)


class DLinear(BaseForecaster):
    """Decomposition + two linear maps ``L -> H * n_outputs`` on the target channel.

    ``hidden_size`` and ``dropout`` are unused (DLinear has no hidden layer).
    """

    name = "dlinear"

    def __init__(self, config: DLinearConfig, **dims: int) -> None:
        super().__init__(config, **dims)
        L, H = self.input_chunk_length, self.output_chunk_length
        self.decomposition = SeriesDecomposition(config.moving_avg)
        self.seasonal = torch.nn.Linear(L, H * self.n_outputs)
        self.trend = torch.nn.Linear(L, H * self.n_outputs)
        if config.init == "mean":  # each output starts as the lookback's mean (seasonal + trend = x)
            for layer in (self.seasonal, self.trend):
                torch.nn.init.constant_(layer.weight, 1.0 / L)
        self.covariates: CovariateProjection | None = None
        if CovariateProjection.has_covariates(
            self.n_past_features, self.n_future_features, self.n_static
        ):
            self.covariates = CovariateProjection(**dims)

    def forecast(self, past: Tensor, future: Tensor, static: Tensor) -> Tensor:
        seasonal, trend = self.decomposition(past[..., 0])
        out = self._reshape_head(self.seasonal(seasonal) + self.trend(trend))
        if self.covariates is not None:
            out = out + self.covariates(past, future, static)
        return out
