"""What one trial reserves, and how many trials fit on the cluster at once.

A single-worker trial trains in the Tune trial actor itself (``tsdl.train.in_process.trains_in_process``),
so that actor reserves the worker's CPUs/GPUs: :func:`direct_trial_resources`.

A multi-worker trial is two things: the Tune trial actor, which only waits in ``TorchTrainer.fit()``, and the
Train run it launches, whose controller (0 CPU) places ``num_workers`` workers in a placement
group of its own. Only the workers compute, so only they should hold CPUs/GPUs. If the trial
actor also held a CPU (Tune's default) or even 0.1 CPU, then on 2 CPUs two trial actors leave
1.8 CPUs, one 1-CPU worker group fits and the other waits forever. The trial actor therefore
reserves a little memory and no CPU (a Tune placement group needs one non-empty bundle), and
Tune's concurrency is capped by how many worker groups the cluster can hold at once.

With an autoscaler (KubeRay's, `deploy.autoscaling`), "the cluster" is what it may grow to, not
what runs at start: the deploy layer puts that upper bound in `AUTOSCALER_CAPACITY_ENV` on the
head, concurrency is sized from it, and the trials Tune then starts ask Ray for worker groups
that do not fit yet: that pending demand is what makes the autoscaler add worker pods. Sizing
from the start-up resources instead would never ask for more, and with `minReplicas: 0` (no GPU
at start) would fail at once.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tsdl.config import TsdlConfig
from tsdl.errors import TuneError

if TYPE_CHECKING:
    from ray.tune import PlacementGroupFactory

__all__ = [
    "AUTOSCALER_CAPACITY_ENV",
    "TRIAL_ACTOR_MEMORY",
    "autoscaler_capacity",
    "direct_trial_resources",
    "max_concurrent_trials",
    "trial_resources",
    "worker_group_demand",
]

AUTOSCALER_CAPACITY_ENV = "TSDL_AUTOSCALER_CAPACITY"
"""JSON `{"CPU": n, "GPU": m}`: the resources the cluster's autoscaler may grow to."""

TRIAL_ACTOR_MEMORY = 64 * 1024**2
"""Bytes of Ray `memory` the trial actor reserves (it must reserve something)."""


def trial_resources() -> PlacementGroupFactory:
    """The Tune trial actor's reservation: no CPU, no GPU, 64 MiB of memory."""
    from ray.tune import PlacementGroupFactory

    return PlacementGroupFactory([{"CPU": 0, "memory": TRIAL_ACTOR_MEMORY}])


def direct_trial_resources(config: TsdlConfig) -> PlacementGroupFactory:
    """A single-worker trial's reservation: the one worker's CPUs (and GPU), held by the trial actor."""
    from ray.tune import PlacementGroupFactory

    return PlacementGroupFactory([worker_group_demand(config)])


def worker_group_demand(config: TsdlConfig) -> dict[str, float]:
    """CPUs/GPUs one trial's Train worker group reserves: ``{"CPU": n * c, "GPU": n * g}``."""
    res = config.resources
    demand = {"CPU": res.num_workers * res.cpus_per_worker}
    if res.use_gpu:
        demand["GPU"] = res.num_workers * res.gpus_per_worker
    return demand


def autoscaler_capacity(environ: Mapping[str, str] = os.environ) -> dict[str, float] | None:
    """The autoscaler's upper bound from `AUTOSCALER_CAPACITY_ENV`, or None without one.

    Raises:
        TuneError: the variable is set but is not a JSON object of numbers.
    """
    raw = environ.get(AUTOSCALER_CAPACITY_ENV)
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
        return {str(k): float(v) for k, v in parsed.items()}
    except (ValueError, TypeError, AttributeError):
        raise TuneError(
            f"{AUTOSCALER_CAPACITY_ENV}={raw!r} is not a JSON object of resource amounts",
            hint='set it like {"CPU": 16, "GPU": 4}, or unset it',
        ) from None


def max_concurrent_trials(
    config: TsdlConfig,
    cluster: Mapping[str, float],
    *,
    capacity: Mapping[str, float] | None = None,
) -> int:
    """Trials whose worker groups fit at once, capped by ``tune.max_concurrent_trials``.

    Args:
        config: resources per trial and the optional cap.
        cluster: ``ray.cluster_resources()``.
        capacity: what an autoscaler may grow the cluster to (`autoscaler_capacity`); sizes
            the concurrency when larger than what runs now.

    Raises:
        TuneError: not even one trial's worker group fits (it would wait forever).
    """
    if capacity:
        cluster = {
            name: max(cluster.get(name, 0.0), capacity.get(name, 0.0))
            for name in {*cluster, *capacity}
        }
    demand = worker_group_demand(config)
    fits = min(
        math.floor(cluster.get(name, 0.0) / amount + 1e-9)
        for name, amount in demand.items()
        if amount > 0
    )
    if fits < 1:
        have = ", ".join(f"{k}={cluster.get(k, 0.0):g}" for k in demand)
        need = ", ".join(f"{k}={v:g}" for k, v in demand.items())
        raise TuneError(
            f"one trial needs {need} (resources.num_workers x cpus/gpus_per_worker) but the Ray "
            f"cluster has {have}",
            hint="lower resources.num_workers or resources.cpus_per_worker, or join a bigger "
            "cluster with --address",
        )
    cap = config.tune.max_concurrent_trials
    return min(fits, cap) if cap is not None else fits
