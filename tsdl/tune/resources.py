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

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from tsdl.config import TsdlConfig
from tsdl.errors import TuneError
from tsdl.ray_connection import (
    AUTOSCALER_CAPACITY_ENV,
    describe,
    groups_that_fit,
    worker_group_demand,
)
from tsdl.ray_connection import autoscaler_capacity as _autoscaler_capacity

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


def autoscaler_capacity(environ: Mapping[str, str] = os.environ) -> dict[str, float] | None:
    """`tsdl.ray_connection.autoscaler_capacity`, failing as a TuneError."""
    return _autoscaler_capacity(environ, error=TuneError)


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
    fits = groups_that_fit(demand, cluster)  # the check `tsdl train` makes too
    if fits < 1:
        have, need = describe(cluster, demand), describe(demand)
        raise TuneError(
            f"one trial needs {need} (resources.num_workers x cpus/gpus_per_worker) but the Ray "
            f"cluster has {have}",
            hint="lower resources.num_workers or resources.cpus_per_worker, or join a bigger "
            "cluster with --address",
        )
    cap = config.tune.max_concurrent_trials
    return min(fits, cap) if cap is not None else fits
