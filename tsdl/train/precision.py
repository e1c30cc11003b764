"""Mixed precision: autocast + (for fp16) a GradScaler, chosen from `training.precision`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from tsdl.errors import TrainingError

__all__ = ["MixedPrecision"]


class MixedPrecision:
    """One object that knows the autocast dtype and owns the GradScaler.

    ``32`` runs in fp32; ``bf16-mixed`` autocasts to bfloat16 (CUDA or CPU, no scaler needed);
    ``16-mixed`` autocasts to float16 with dynamic loss scaling and is CUDA-only.
    """

    def __init__(self, precision: str, device: torch.device) -> None:
        self.precision = precision
        self.device_type = device.type
        if precision == "16-mixed" and device.type != "cuda":
            raise TrainingError(
                "training.precision '16-mixed' needs a CUDA GPU, but training runs on "
                f"{device.type}",
                hint="use precision 'bf16-mixed' on CPU, or set resources.use_gpu: true",
            )
        self.dtype = {"32": None, "16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}[precision]
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "16-mixed")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            yield

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.scaler.load_state_dict(state)
