"""Seeds and determinism: same seed, same losses, on every rank and after every restart."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = [
    "epoch_seed",
    "rng_state",
    "seed_everything",
    "set_cublas_workspace",
    "set_deterministic",
    "set_rng_state",
]


def seed_everything(seed: int, *, deterministic: bool, use_cuda: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic kernels.

    On CUDA, deterministic cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` before the first cuBLAS call.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if use_cuda:
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        if use_cuda:
            set_cublas_workspace()
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        set_deterministic(True)


def set_cublas_workspace() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` (what deterministic cuBLAS needs), unless already set.

    cuBLAS reads it once, at the process's first cuBLAS call: a process that trains several runs
    (a reused Tune trial actor) must set it before its first run, whatever that run's settings.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def set_deterministic(mode: bool) -> None:
    """``torch.use_deterministic_algorithms(mode)`` without its ``torch._inductor`` import.

    The public function imports ``torch._inductor.config`` (sympy and more: 1.7 s of CPU per
    process, measured) only to set TorchInductor's flag; tsdl never compiles, so the kernel flag
    alone is what matters. Falls back to the public function if the private setter moves.
    """
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(mode)
        return
    setter(mode, warn_only=False)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """A per-(epoch, rank) seed, so a resumed epoch replays exactly the same shuffles and dropout."""
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % 2**31


def rng_state() -> dict:
    """All RNG states of this process, as tensors and plain values (checkpoints load them with
    ``torch.load(weights_only=True)``, which refuses numpy arrays)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state` output."""
    random.setstate(state["python"])
    npy = state["numpy"]
    keys = np.asarray(npy["keys"].numpy(), dtype=np.uint32)
    np.random.set_state((npy["kind"], keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
