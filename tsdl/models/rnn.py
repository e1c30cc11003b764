"""A recurrent encoder (LSTM or GRU) over every past channel, with an MLP decoder.

The encoder reads the whole lookback ``[B, L, F_past]``; its last hidden state, the flattened
known-future covariates and the static covariates feed a two-layer MLP that emits the whole
horizon at once (no autoregressive feedback, so no exposure bias and one forward per window).
"""

from __future__ import annotations

import torch
from torch import Tensor

from tsdl.config.model import RNNConfig
from tsdl.models.base import BaseForecaster

__all__ = ["RNN"]


class RNN(BaseForecaster):
    """LSTM/GRU encoder (``model.cell``) + MLP decoder; ``hidden_size`` is both widths."""

    name = "rnn"

    def __init__(self, config: RNNConfig, **dims: int) -> None:
        super().__init__(config, **dims)
        cell = torch.nn.LSTM if config.cell == "lstm" else torch.nn.GRU
        self.encoder = cell(
            input_size=self.n_past_features,
            hidden_size=config.hidden_size,
            num_layers=config.n_layers,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
            batch_first=True,
        )
        n_decoder_in = (
            config.hidden_size + self.output_chunk_length * self.n_future_features + self.n_static
        )
        self.decoder = torch.nn.Sequential(
            torch.nn.Linear(n_decoder_in, config.hidden_size),
            torch.nn.ReLU(),
            torch.nn.Dropout(config.dropout),
            torch.nn.Linear(config.hidden_size, self.output_chunk_length * self.n_outputs),
        )

    def forecast(self, past: Tensor, future: Tensor, static: Tensor) -> Tensor:
        batch = past.shape[0]
        encoded, _ = self.encoder(past)  # [B, L, hidden]
        context = torch.cat(
            [encoded[:, -1], future.reshape(batch, -1), static.reshape(batch, -1)], dim=1
        )
        return self._reshape_head(self.decoder(context))
