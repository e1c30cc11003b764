"""Where a run ran: host, accelerators, library versions and source revision."""

from __future__ import annotations

import platform
import socket
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["git_commit", "package_versions", "system_info"]

_PACKAGES = ("tsdl", "torch", "ray", "mlflow", "optuna", "numpy", "pandas", "pyarrow", "pydantic")


def system_info() -> dict[str, str]:
    """Host, CPU/GPU names and counts, CUDA/cuDNN and key package versions, as flat strings.

    Everything is a string so the dict can go straight into MLflow params; unknown values are
    ``"none"`` rather than missing keys, so runs stay comparable column by column.
    """
    import os

    import torch

    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": _cpu_name(),
        "cpu_count": str(os.cpu_count() or 0),
        "gpu_count": "0",
        "gpu": "none",
        "cuda": str(torch.version.cuda or "none"),
        "cudnn": "none",
        "git_commit": git_commit() or "none",
    }
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        names = sorted({torch.cuda.get_device_name(i) for i in range(count)})
        info["gpu_count"] = str(count)
        info["gpu"] = ", ".join(names)
        cudnn = torch.backends.cudnn.version()
        info["cudnn"] = str(cudnn) if cudnn is not None else "none"
    info.update({f"{name}_version": v for name, v in package_versions().items()})
    return info


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide numerical results (``"none"`` if absent)."""
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "none"
    return out


def git_commit(path: str | Path = ".") -> str | None:
    """The HEAD commit of the git checkout containing ``path`` (``+dirty`` if modified), or None.

    None when git is missing or ``path`` is not inside a repository (e.g. in a container image).
    """
    cwd = Path(path)
    try:
        head = _git(["rev-parse", "HEAD"], cwd)
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def _git(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()


def _cpu_name() -> str:
    """The CPU model; platform.processor() is empty on most Linux systems."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
