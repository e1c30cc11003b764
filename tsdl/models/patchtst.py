"""PatchTST (Nie et al., "A Time Series is Worth 64 Words", ICLR 2023).

Channel-independent: the target channel's lookback (instance-normalized by the shared
``model.instance_norm``, RevIN by default as in the paper) is padded at the end by ``patch_stride`` copies of its last value, cut into overlapping patches, embedded
linearly with a learned positional encoding, run through a Transformer encoder and read out by
a flatten head. The encoder uses pre-norm LayerNorm blocks (``norm_first``), a stable stand-in
for the paper's BatchNorm that does not couple the samples of a batch. Covariates, when present,
enter through a zero-initialized :class:`CovariateProjection` added to the output.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tsdl.config.model import PatchTSTConfig
from tsdl.models.base import BaseForecaster
from tsdl.models.covariates import CovariateProjection

__all__ = ["PatchTST", "n_patches"]


def n_patches(input_chunk_length: int, patch_len: int, stride: int) -> int:
    """Patches produced from ``L`` steps after end padding by ``stride`` steps."""
    return (input_chunk_length + stride - patch_len) // stride + 1


class PatchTST(BaseForecaster):
    """Patch Transformer over the target channel; ``hidden_size`` is ``d_model``."""

    name = "patchtst"

    def __init__(self, config: PatchTSTConfig, **dims: int) -> None:
        super().__init__(config, **dims)
        d_model, L = config.hidden_size, self.input_chunk_length
        if config.patch_len > L:
            raise self._invalid("patch_len", config.patch_len, f"must be <= input length {L}")
        if d_model % config.n_heads:
            raise self._invalid(
                "n_heads", config.n_heads, f"must divide model.hidden_size={d_model}"
            )
        self.patch_len, self.stride = config.patch_len, config.patch_stride
        self.n_patches = n_patches(L, config.patch_len, config.patch_stride)
        self.embed = torch.nn.Linear(config.patch_len, d_model)
        self.position = torch.nn.Parameter(
            torch.empty(self.n_patches, d_model).uniform_(-0.02, 0.02)
        )
        self.dropout = torch.nn.Dropout(config.dropout)
        layer = torch.nn.TransformerEncoderLayer(
            d_model,
            config.n_heads,
            dim_feedforward=config.ff_size,
            dropout=config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = torch.nn.TransformerEncoder(
            layer, config.n_layers, norm=torch.nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.head = torch.nn.Linear(
            self.n_patches * d_model, self.output_chunk_length * self.n_outputs
        )
        self.covariates: CovariateProjection | None = None
        if CovariateProjection.has_covariates(
            self.n_past_features, self.n_future_features, self.n_static
        ):
            self.covariates = CovariateProjection(**dims)

    def patchify(self, x: Tensor) -> Tensor:
        """Args: x ``[B, L]``. Returns: patches ``[B, n_patches, patch_len]``."""
        padded = torch.cat([x, x[:, -1:].expand(-1, self.stride)], dim=1)
        return padded.unfold(dimension=1, size=self.patch_len, step=self.stride)

    def forecast(self, past: Tensor, future: Tensor, static: Tensor) -> Tensor:
        x = past[..., 0]
        tokens = self.dropout(self.embed(self.patchify(x)) + self.position)
        encoded = self.encoder(tokens)  # [B, n_patches, d_model]
        out = self._reshape_head(self.head(self.dropout(encoded.flatten(1))))
        if self.covariates is not None:
            out = out + self.covariates(past, future, static)
        return out
