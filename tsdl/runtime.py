"""Connecting to Ray: in-process for laptops and CI, `auto` for `ray start --head`, ray:// for clusters."""

from __future__ import annotations

import logging
import os

from tsdl.errors import TrainingError

__all__ = ["ensure_ray"]

_log = logging.getLogger(__name__)


def ensure_ray(
    address: str | None = None, *, num_cpus: int | None = None, log_to_driver: bool = True
) -> None:
    """Start or join Ray once per process.

    Args:
        address: None starts an in-process Ray; "auto" joins a local `ray start --head` cluster;
            "ray://host:10001" connects a Ray client. Inside a RayJob, RAY_ADDRESS is set.
        num_cpus: CPUs of an in-process Ray (default: all cores).
        log_to_driver: forward workers' stdout/stderr; the CLI turns it off and prints its own
            progress (Ray's logs stay under /tmp/ray/session_latest/logs).
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # Ray's per-process log prefixes are noise for a CLI user; keep warnings and errors.
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    try:
        if address is None and not os.environ.get("RAY_ADDRESS"):
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=log_to_driver,
            )
        else:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=log_to_driver)
    except ConnectionError as exc:
        raise TrainingError(
            f"cannot connect to Ray at {address or os.environ.get('RAY_ADDRESS')}: {exc}",
            hint="start a cluster with `ray start --head`, or drop --address to run in-process",
        ) from None
    _log.debug("ray resources: %s", ray.cluster_resources())
