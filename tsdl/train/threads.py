"""How many intra-op threads torch gets: from the config, so a run does not depend on its host.

A run's numbers depend on torch's thread count (reductions split differently): the same seed on a
16-core laptop and on 2-core CI gave PatchTST weights 4e-5 apart after 3 epochs. So the count is
resolved once when a run starts, stored in its config (and manifest), and a resumed or
reproduced run uses the stored count on any machine.

Unset (``resources.torch_threads: null``), a Ray Train worker gets one thread per CPU it holds,
and a run training in the driver every CPU this process may use: its affinity mask, capped by the
container's CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), so
a pod limited to 2 CPUs on a 64-core node does not start 64 threads.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from tsdl.config import TsdlConfig

__all__ = ["available_cpus", "cgroup_cpu_limit", "torch_threads"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def torch_threads(config: TsdlConfig, *, in_process: bool) -> int:
    """The thread count of a run: the configured one, else the CPUs the worker may use."""
    res = config.resources
    if res.torch_threads is not None:
        return res.torch_threads
    return available_cpus() if in_process else max(1, int(res.cpus_per_worker))


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may use: its affinity mask, capped by the cgroup CPU quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    return max(1, min(cpus, limit) if limit is not None else cpus)


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """The CPU quota of this process's cgroup, rounded up to whole CPUs; None when unlimited.

    cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"``. cgroup v1:
    ``cpu/cpu.cfs_quota_us`` (-1: unlimited) over ``cpu/cpu.cfs_period_us`` (also mounted as
    ``cpu,cpuacct``).
    """
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            return _ceil_ratio(parts[0], parts[1])
        return None
    for sub in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        quota, period = _read(root / sub / "cpu.cfs_quota_us"), _read(root / sub / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _ceil_ratio(quota, period) if int(quota) > 0 else None
    return None


def _ceil_ratio(quota: str, period: str) -> int | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
