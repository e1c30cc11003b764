"""Which fast kernels a run trains with: AdamW's implementation and ``torch.compile``.

Both are speed choices a user of plain PyTorch would try on a CPU (docs/benchmarks.md):
``AdamW(fused=True)`` made a plain DLinear loop on ETTh1 1.27x faster there (whole epochs, median
of five paired repeats), so ``training.optimizer.implementation: auto`` (the default) resolves
to ``fused`` on CPU; on CUDA it keeps torch's own choice (``foreach``), which no GPU has
measured against ``fused`` here yet.
A run resolves ``auto`` when it starts and stores the result with its config and manifest, so a
resume or ``--reproduce`` uses the same kernel on any machine.

``training.compile`` compiles the model's forward in place (``nn.Module.compile``): the module
keeps its own ``state_dict`` keys (no ``_orig_mod.`` prefix), so checkpoints load into an
uncompiled model for resume, fine-tuning and inference, and DDP wraps it as any module.
"""

from __future__ import annotations

import shutil
import sys

import torch

from tsdl.errors import ConfigError

__all__ = [
    "Kernel",
    "adamw_kernel",
    "check_compile_supported",
    "compile_model",
    "compile_problem",
    "keep_built_kernel",
    "kernel_flags",
]

Kernel = str
"""One of ``default``, ``foreach``, ``fused`` (``auto`` resolved)."""


def adamw_kernel(implementation: str, device_type: str) -> Kernel:
    """``training.optimizer.implementation`` as it runs on ``device_type`` (``auto`` resolved)."""
    if implementation != "auto":
        return implementation
    return "fused" if device_type == "cpu" else "default"


def kernel_flags(kernel: Kernel) -> dict[str, bool | None]:
    """AdamW's ``foreach``/``fused`` arguments for a resolved kernel (None: torch chooses)."""
    return {
        "default": {"foreach": None, "fused": None},
        "foreach": {"foreach": True, "fused": None},
        "fused": {"foreach": None, "fused": True},
    }[kernel]


def keep_built_kernel(optimizer: torch.optim.Optimizer) -> None:
    """Set every param group's kernel flags back to the ones ``optimizer`` was built with.

    Call after ``load_state_dict``: a restored optimizer state carries the kernel flags of the
    run that saved it (torch copies the saved param groups whole), so without this a checkpoint
    written by an older default would silently train the resumed epochs with another kernel than
    the config says. The flags built from the config stay in ``optimizer.defaults``.
    """
    flags = {name: optimizer.defaults[name] for name in ("foreach", "fused")}
    for group in optimizer.param_groups:
        group.update(flags)


def compile_problem(device_type: str) -> str | None:
    """Why ``torch.compile`` cannot run here (None: it can)."""
    if not torch._dynamo.is_dynamo_supported():
        return f"torch {torch.__version__} cannot compile on Python {sys.version.split()[0]}"
    if device_type == "cpu":
        from torch._inductor import config as inductor

        # What inductor will run ($CXX or g++ when torch was imported), as it searches for it.
        search = inductor.cpp.cxx if isinstance(inductor.cpp.cxx, (list, tuple)) else (inductor.cpp.cxx,)
        compilers = [c for c in search if c]
        if not any(shutil.which(c) for c in compilers):
            return (f"torch.compile builds C++ kernels on CPU, and no C++ compiler "
                    f"({', '.join(compilers) or 'g++'}) is on PATH")
    elif device_type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "torch.compile on CUDA needs Triton, which is not installed"
    return None


def check_compile_supported(device_type: str) -> None:
    """Raise the one-line ConfigError for ``training.compile: true`` where compiling cannot work."""
    problem = compile_problem(device_type)
    if problem is not None:
        raise ConfigError(
            f"training.compile: true cannot work here: {problem}",
            hint="set training.compile: false, or install what is missing (a C++ compiler: apt-get install g++)",
        )


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """Compile ``model``'s forward in place (torch.compile, default mode); returns the same module."""
    model.compile()
    return model
