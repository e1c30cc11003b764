"""A zero-initialized linear map from covariates to the head, for channel-independent models.

DLinear and PatchTST forecast from the target channel alone (as in their papers). When a dataset
has covariates, this adds ``W [past covariates, future covariates, static] + b`` to their output.
It starts at zero, so an untrained model is exactly the univariate architecture and the
covariates only contribute what training finds useful.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["CovariateProjection"]


class CovariateProjection(torch.nn.Module):
    """Linear read-out of every covariate value in the window.

    Args:
        input_chunk_length: lookback length ``L``.
        output_chunk_length: horizon ``H``.
        n_past_features: ``F_past`` (channel 0, the target, is excluded).
        n_future_features: ``F_fut``.
        n_static: ``S``.
        n_outputs: values per horizon step.
    """

    def __init__(
        self,
        *,
        input_chunk_length: int,
        output_chunk_length: int,
        n_past_features: int,
        n_future_features: int,
        n_static: int,
        n_outputs: int,
    ) -> None:
        super().__init__()
        n_in = (
            input_chunk_length * (n_past_features - 1)
            + output_chunk_length * n_future_features
            + n_static
        )
        self.output_chunk_length = output_chunk_length
        self.n_outputs = n_outputs
        self.linear = torch.nn.Linear(n_in, output_chunk_length * n_outputs)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    @staticmethod
    def has_covariates(n_past_features: int, n_future_features: int, n_static: int) -> bool:
        """Whether there is anything to project (otherwise the model builds no projection)."""
        return n_past_features > 1 or n_future_features > 0 or n_static > 0

    def forward(self, past: Tensor, future: Tensor, static: Tensor) -> Tensor:
        """Args: past ``[B, L, F_past]``, future ``[B, H, F_fut]``, static ``[B, S]``.

        Returns:
            ``[B, H, n_outputs]``.
        """
        batch = past.shape[0]
        flat = torch.cat(
            [
                past[..., 1:].reshape(batch, -1),
                future.reshape(batch, -1),
                static.reshape(batch, -1),
            ],
            dim=1,
        )
        return self.linear(flat).reshape(batch, self.output_chunk_length, self.n_outputs)
