"""N-HiTS (Challu et al., "N-HiTS: Neural Hierarchical Interpolation for Time Series", AAAI 2023).

A stack of MLP blocks. Block ``i`` max-pools the residual lookback by ``pooling_sizes[i]`` (a
coarse view for early blocks, the full resolution for the last), predicts a backcast of the
lookback and ``H / pooling_sizes[i]`` forecast coefficients per output, and interpolates the
coefficients linearly to the horizon (a fixed interpolation matrix, the values of
``F.interpolate(mode="linear", align_corners=True)``, because that op has no deterministic CUDA
backward and ``training.deterministic`` is on by default). Each block explains away its backcast from the residual
and adds its forecast to the sum (doubly residual stacking). Covariates (past, future, static)
are flattened into every block's MLP input, as in NeuralForecast.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tsdl.config.model import NHiTSConfig
from tsdl.models.base import BaseForecaster

__all__ = ["NHiTS", "default_pooling_sizes", "linear_interpolation_matrix"]


def default_pooling_sizes(n_blocks: int) -> list[int]:
    """Decreasing powers of two ending at 1, e.g. ``[4, 2, 1]`` for three blocks."""
    return [2 ** (n_blocks - 1 - i) for i in range(n_blocks)]


def linear_interpolation_matrix(n_in: int, n_out: int) -> Tensor:
    """``[n_in, n_out]`` float32 ``W`` with ``x @ W == F.interpolate(x, n_out, mode="linear",
    align_corners=True)`` for ``x [..., n_in]``: output ``j`` sits at input position
    ``j * (n_in - 1) / (n_out - 1)`` and mixes its two neighbours linearly (a matmul has a
    deterministic CUDA backward; ``F.interpolate`` does not)."""
    # float32 positions and weights, computed as torch's CPU kernel does, so the values match it.
    weights = torch.zeros(n_in, n_out, dtype=torch.float32)
    step = torch.tensor((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0, dtype=torch.float32)
    for j in range(n_out):
        position = step * j
        left = min(int(position), n_in - 1)
        right = min(left + 1, n_in - 1)
        frac = position - left
        weights[left, j] += 1.0 - frac
        weights[right, j] += frac
    return weights


class _Block(torch.nn.Module):
    """Pool -> MLP -> (backcast ``[B, L]``, forecast ``[B, H, N]`` interpolated from coefficients)."""

    def __init__(
        self,
        *,
        pool: int,
        n_covariates: int,
        input_chunk_length: int,
        output_chunk_length: int,
        n_outputs: int,
        hidden_size: int,
        n_layers: int,
        dropout: float,
        backcast: bool,
    ) -> None:
        super().__init__()
        self.pool = torch.nn.MaxPool1d(kernel_size=pool, stride=pool, ceil_mode=True)
        pooled = -(-input_chunk_length // pool)
        self.n_coefficients = max(output_chunk_length // pool, 1)
        self.output_chunk_length, self.n_outputs = output_chunk_length, n_outputs
        layers: list[torch.nn.Module] = []
        width = pooled + n_covariates
        for _ in range(n_layers):
            layers += [
                torch.nn.Linear(width, hidden_size),
                torch.nn.ReLU(),
                torch.nn.Dropout(dropout),
            ]
            width = hidden_size
        self.mlp = torch.nn.Sequential(*layers)
        self.forecast = torch.nn.Linear(hidden_size, self.n_coefficients * n_outputs)
        # the last block's backcast would feed nothing, so it is not built
        self.backcast = torch.nn.Linear(hidden_size, input_chunk_length) if backcast else None
        upsample = linear_interpolation_matrix(self.n_coefficients, output_chunk_length)
        self.register_buffer("upsample", upsample, persistent=False)

    def forward(self, residual: Tensor, covariates: Tensor) -> tuple[Tensor | None, Tensor]:
        pooled = self.pool(residual.unsqueeze(1)).squeeze(1)
        hidden = self.mlp(torch.cat([pooled, covariates], dim=1))
        coefficients = self.forecast(hidden).reshape(-1, self.n_outputs, self.n_coefficients)
        forecast = (coefficients @ self.upsample.to(coefficients.dtype)).transpose(1, 2)
        backcast = self.backcast(hidden) if self.backcast is not None else None
        return backcast, forecast


class NHiTS(BaseForecaster):
    """Multi-rate MLP blocks over the target's lookback; ``hidden_size`` is each MLP's width."""

    name = "nhits"

    def __init__(self, config: NHiTSConfig, **dims: int) -> None:
        super().__init__(config, **dims)
        pools = config.pooling_sizes or default_pooling_sizes(config.n_blocks)
        if len(pools) != config.n_blocks:
            raise self._invalid(
                "pooling_sizes",
                pools,
                f"needs one entry per block (model.n_blocks={config.n_blocks})",
            )
        if any(p < 1 or p > self.input_chunk_length for p in pools):
            raise self._invalid(
                "pooling_sizes", pools, f"each entry must be in [1, {self.input_chunk_length}]"
            )
        n_covariates = (
            self.input_chunk_length * (self.n_past_features - 1)
            + self.output_chunk_length * self.n_future_features
            + self.n_static
        )
        self.blocks = torch.nn.ModuleList(
            _Block(
                pool=pool,
                n_covariates=n_covariates,
                input_chunk_length=self.input_chunk_length,
                output_chunk_length=self.output_chunk_length,
                n_outputs=self.n_outputs,
                hidden_size=config.hidden_size,
                n_layers=config.n_layers,
                dropout=config.dropout,
                backcast=i < len(pools) - 1,
            )
            for i, pool in enumerate(pools)
        )

    def forecast(self, past: Tensor, future: Tensor, static: Tensor) -> Tensor:
        batch = past.shape[0]
        covariates = torch.cat(
            [
                past[..., 1:].reshape(batch, -1),
                future.reshape(batch, -1),
                static.reshape(batch, -1),
            ],
            dim=1,
        )
        residual = past[..., 0]
        forecast = past.new_zeros(batch, self.output_chunk_length, self.n_outputs)
        for block in self.blocks:
            backcast, block_forecast = block(residual, covariates)
            forecast = forecast + block_forecast
            if backcast is not None:
                residual = residual - backcast
        return forecast
