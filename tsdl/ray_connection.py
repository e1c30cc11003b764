"""Connecting to Ray: in-process for laptops and CI, `auto` for `ray start --head`, ray:// for clusters."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tsdl.errors import ConfigError, TrainingError, TsdlError

if TYPE_CHECKING:
    from tsdl.config import TsdlConfig

__all__ = [
    "AUTOSCALER_CAPACITY_ENV",
    "CONNECT_TIMEOUT_S",
    "autoscaler_capacity",
    "check_address",
    "configure_output",
    "connected_cluster",
    "describe",
    "ensure_ray",
    "groups_that_fit",
    "is_verbose",
    "local_resources",
    "reserve_worker_group",
    "worker_group_demand",
]

CONNECT_TIMEOUT_S = 10.0
"""Seconds a Ray address (``--address``, ``RAY_ADDRESS``, ``resources.address``) has to answer
before tsdl gives up on it (`check_address`); ``ray.init`` itself would retry for minutes."""
AUTOSCALER_CAPACITY_ENV = "TSDL_AUTOSCALER_CAPACITY"
"""JSON `{"CPU": n, "GPU": m}`: the resources the cluster's autoscaler may grow to."""

_log = logging.getLogger(__name__)

_VERBOSE_ENV = "TSDL_VERBOSE"
_START_ATTEMPTS = 3
# Framework loggers whose INFO lines a tsdl user cannot act on (Ray and Tune are set through
# ray.init(logging_level=...) in ensure_ray, because ray.init resets them; Optuna, which resets
# its level on import, in tsdl.tune.runner.build_searcher).
_QUIET_LOGGERS = ("mlflow", "alembic", "optuna", "urllib3", "filelock", "torch.distributed")


def is_verbose() -> bool:
    """--verbose was given (inherited by Ray workers through the environment)."""
    return os.environ.get(_VERBOSE_ENV) == "1"


def configure_output(*, verbose: bool) -> None:
    """Show or hide framework noise, once per process, before Ray starts.

    Without --verbose: Ray/Tune/Ray Train log only errors, MLflow/Optuna/alembic only warnings,
    and the in-process raylet may start as many workers at once as a study needs without its
    "N worker processes have been started ... 4x the maximum expected startup concurrency"
    message (each trial starts a Tune actor, a Train controller and its workers). With
    --verbose everything is shown as the frameworks print it; Ray's own logs always stay under
    /tmp/ray/session_latest/logs.
    """
    if verbose:
        os.environ[_VERBOSE_ENV] = "1"
        return
    os.environ.pop(_VERBOSE_ENV, None)
    os.environ.setdefault("RAY_worker_maximum_startup_concurrency", "32")
    # MLflow sets its loggers from this variable when it is imported (default INFO: "Creating
    # initial MLflow database tables..."); the runs themselves are unaffected.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # Tune's new output engine prints an experiment box and paths even at verbose=0; the legacy
    # engine at verbose=0 prints nothing, and tsdl.tune.progress reports the trials instead.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def ensure_ray(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    log_to_driver: bool | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> None:
    """Start or join Ray once per process (a Ray the caller already started or joined is used as is).

    Args:
        address: None starts an in-process Ray; "auto" joins a local `ray start --head` cluster;
            "ray://host:10001" connects a Ray client. Inside a RayJob, RAY_ADDRESS is set.
            An address must answer within ``connect_timeout_s`` (`check_address`).
        num_cpus: CPUs of an in-process Ray (default: all cores).
        log_to_driver: forward workers' stdout/stderr (default: only with --verbose; tsdl
            prints its own progress, Ray's logs stay under /tmp/ray/session_latest/logs).
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # Ray's per-process log prefixes are noise for a CLI user; keep warnings and errors.
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    verbose = is_verbose()
    log_to_driver = verbose if log_to_driver is None else log_to_driver
    level = logging.INFO if verbose else logging.ERROR
    sigterm = signal.getsignal(signal.SIGTERM)
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target is not None:
        check_address(target, timeout_s=connect_timeout_s)
    try:
        if target is None:
            _start_local(num_cpus=num_cpus, level=level, log_to_driver=log_to_driver)
        else:
            ray.init(address=address, logging_level=level, log_to_driver=log_to_driver)
    except ConnectionError as exc:
        raise TrainingError(
            f"cannot connect to Ray at {address or os.environ.get('RAY_ADDRESS')}: {exc}",
            hint="start a cluster with `ray start --head`, or drop --address to run in-process",
        ) from None
    except TsdlError:  # _start_local's own one-line error already names its fix: never wrap it
        raise
    except Exception as exc:  # raylet/GCS start-up failures are plain Exceptions in Ray
        where = address or os.environ.get("RAY_ADDRESS") or "in-process"
        raise TrainingError(
            f"cannot start Ray ({where}): {' '.join(str(exc).split())[:300]}",
            hint="see the logs under /tmp/ray/session_latest/logs; on an overloaded machine, retry",
        ) from exc
    finally:
        _keep_sigterm_handler(sigterm)
    _log.debug("ray resources: %s", ray.cluster_resources())


def _start_local(*, num_cpus: int | None, level: int, log_to_driver: bool) -> None:
    """An in-process Ray, retried when its raylet misses Ray's fixed 30 s registration window.

    That window is not configurable in Ray 2.60 and a busy machine can miss it; after the third
    miss it is a TrainingError instead of Ray's traceback.
    """
    import ray

    for attempt in range(1, _START_ATTEMPTS + 1):
        try:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=level,
                log_to_driver=log_to_driver,
            )
            return
        except Exception as exc:  # Ray raises a bare Exception for this
            if "timed out during startup" not in str(exc):
                raise
            ray.shutdown()
            if attempt == _START_ATTEMPTS:
                raise TrainingError(
                    f"the local Ray node did not start within Ray's 30 s window ({_START_ATTEMPTS} tries)",
                    hint="the machine is overloaded: retry when it is quieter, or start Ray once "
                    "with `ray start --head` and pass --address auto",
                ) from None
            _log.warning("local Ray did not start in time (try %d of %d); retrying", attempt, _START_ATTEMPTS)


def _keep_sigterm_handler(handler: object) -> None:
    """`ray.init` replaces the driver's SIGTERM handler with ``sys.exit``; keep the caller's own
    (the CLI's turns SIGTERM into an interrupt, so MLflow runs end KILLED rather than FAILED)."""
    if callable(handler) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def check_address(address: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail within ``timeout_s`` with one line when a Ray address does not answer.

    Without this, ``ray.init`` on an address nobody answers at retries for minutes and prints
    Ray's raw C++ log lines. Both a Ray head's GCS (``host:6379``, ``auto``) and a Ray client
    server (``ray://host:10001``) speak gRPC: one call with a deadline tells a live server (any
    reply, even "unimplemented" or "unauthenticated") from a refused connection, an unknown
    host, something that is not gRPC, or a port that accepts and never answers.

    Raises:
        TrainingError: the address is malformed, refused, unknown or silent.
    """
    target = _host_port(address)
    if target is None:  # "auto" with no local cluster: ray.init says so at once
        return
    reason = _grpc_silence(target, timeout_s)
    if reason is not None:
        raise TrainingError(
            f"cannot connect to Ray at {address}: {reason}",
            hint="check the address (`ray status` on the head prints it) and that the cluster is up, "
            "or drop --address (and RAY_ADDRESS) to run in-process",
        )


def _host_port(address: str) -> str | None:
    """``host:port`` to probe, None when ``auto`` finds no recorded local cluster."""
    text = address.strip()
    if text == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            return canonicalize_bootstrap_address("auto")
        except Exception:  # noqa: BLE001 - no cluster found: ray.init reports it in one line
            return None
    bare = text.removeprefix("ray://")
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in bare:
        raise ConfigError(
            f"Ray address {address!r} is not auto, host:port or ray://host:port",
            hint="e.g. --address auto, --address 10.0.0.5:6379 or --address ray://head:10001",
        )
    return bare


def _grpc_silence(target: str, timeout_s: float) -> str | None:
    """None when a gRPC server answers at ``target`` within ``timeout_s``, else why not."""
    import grpc

    channel = grpc.insecure_channel(target)
    try:
        channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"no answer within {timeout_s:g} s"
        if code == grpc.StatusCode.UNAVAILABLE:
            detail = " ".join(str(exc.details() or "").split())[:160]
            return f"unreachable ({detail or 'connection failed'})"
    finally:
        channel.close()
    return None


def connected_cluster() -> bool:
    """Whether this process is connected to a Ray cluster it did not start: ``ray.init(address=...)``
    in a notebook, a Ray client, or ``auto``. A Ray started in-process (``ray.init()``) is not one."""
    import sys

    if "ray" not in sys.modules:
        return False
    import ray

    if not ray.is_initialized():
        return False
    try:
        from ray.util.client import ray as client

        if client.is_connected():
            return True
        node = ray._private.worker.global_worker.node
    except Exception:  # noqa: BLE001 - Ray internals moved: assume the caller's cluster
        return True
    return node is None or not node.head


def worker_group_demand(config: TsdlConfig) -> dict[str, float]:
    """CPUs/GPUs one run's Train worker group reserves: ``{"CPU": n * c, "GPU": n * g}``."""
    res = config.resources
    demand = {"CPU": res.num_workers * res.cpus_per_worker}
    if res.use_gpu:
        demand["GPU"] = res.num_workers * res.gpus_per_worker
    return demand


def groups_that_fit(demand: Mapping[str, float], cluster: Mapping[str, float]) -> int:
    """How many worker groups of ``demand`` fit in ``cluster`` (``ray.cluster_resources()``) at once."""
    return min(
        (math.floor(cluster.get(name, 0.0) / amount + 1e-9) for name, amount in demand.items() if amount > 0),
        default=1_000_000,
    )


def describe(resources: Mapping[str, float], names: Any = None) -> str:
    """``CPU=8, GPU=1`` for the given resource names (default: all)."""
    return ", ".join(f"{k}={resources.get(k, 0.0):g}" for k in (names or resources))


def autoscaler_capacity(
    environ: Mapping[str, str] = os.environ, *, error: type[TsdlError] = TrainingError
) -> dict[str, float] | None:
    """The autoscaler's upper bound from `AUTOSCALER_CAPACITY_ENV`, or None without one.

    Raises:
        error: the variable is set but is not a JSON object of numbers.
    """
    raw = environ.get(AUTOSCALER_CAPACITY_ENV)
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
        return {str(k): float(v) for k, v in parsed.items()}
    except (ValueError, TypeError, AttributeError):
        raise error(
            f"{AUTOSCALER_CAPACITY_ENV}={raw[:80]!r} is not a JSON object of resource amounts",
            hint='set it like {"CPU": 16, "GPU": 4}, or unset it',
        ) from None


def reserve_worker_group(config: TsdlConfig, *, say: Callable[[str], None] = print) -> None:
    """Make sure the run's worker group can be placed before Ray Train waits for it forever.

    Ray Train retries a worker group that does not fit without end, silently. Here instead:
    on a Ray this process started (this machine), a group that does not fit is refused at once
    with what the machine has. On a cluster that is too small now, tsdl says it is waiting and
    asks for the group (a pending placement group is what makes an autoscaler add nodes), for at
    most ``resources.placement_timeout_s``; a group larger than the autoscaler's known upper
    bound (`AUTOSCALER_CAPACITY_ENV`) is refused at once.

    Raises:
        TrainingError: the group does not fit here, cannot fit the cluster, or did not fit in time.
    """
    import ray

    demand = worker_group_demand(config)
    cluster = ray.cluster_resources() if ray.is_initialized() else local_resources()
    if groups_that_fit(demand, cluster) >= 1:
        return
    need, have = describe(demand), describe(cluster, demand)
    fix = _fix(config, cluster)
    if not connected_cluster():
        raise TrainingError(
            f"the run needs {need} (resources.num_workers x cpus/gpus_per_worker) but this machine has {have}",
            hint=fix if "GPU" in fix else f"{fix}, or join a bigger cluster with --address",
        )
    capacity = autoscaler_capacity()
    if capacity is not None:
        ceiling = {k: max(cluster.get(k, 0.0), capacity.get(k, 0.0)) for k in {*cluster, *capacity}}
        if groups_that_fit(demand, ceiling) < 1:
            raise TrainingError(
                f"the run needs {need} but the Ray cluster can grow to {describe(ceiling, demand)} at most",
                hint=fix,
            )
    _wait_for_nodes(config, demand, need=need, have=have, fix=fix, say=say)


def local_resources() -> dict[str, float]:
    """What an in-process Ray started here would offer: CPUs as Ray counts them (cgroup quota
    included) and GPUs as Ray detects them, known before paying Ray's start-up."""
    from ray._private.accelerators import get_accelerator_manager_for_resource
    from ray._private.utils import get_num_cpus

    gpus = get_accelerator_manager_for_resource("GPU").get_current_node_num_accelerators()
    return {"CPU": float(get_num_cpus()), "GPU": float(gpus)}


def _fix(config: TsdlConfig, cluster: Mapping[str, float]) -> str:
    if config.resources.use_gpu and cluster.get("GPU", 0.0) < config.resources.gpus_per_worker:
        return "drop --gpus (resources.use_gpu), or join a cluster with GPUs via --address"
    return "lower --num-workers (resources.num_workers) or resources.cpus_per_worker"


def _wait_for_nodes(config: TsdlConfig, demand: Mapping[str, float], *, need: str, have: str, fix: str,
                    say: Callable[[str], None]) -> None:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    res = config.resources
    timeout = res.placement_timeout_s
    bundle = {"CPU": res.cpus_per_worker, **({"GPU": res.gpus_per_worker} if res.use_gpu else {})}
    say(f"waiting up to {timeout:g} s for the Ray cluster to add nodes: the run needs {need}, "
        f"it has {have} (resources.placement_timeout_s)")
    group = placement_group([dict(bundle) for _ in range(res.num_workers)], strategy="PACK")
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            if group.wait(timeout_seconds=min(5.0, left)):  # short waits: signals are handled between
                return
        raise TrainingError(
            f"the Ray cluster did not grow to fit the run ({need}; it has "
            f"{describe(ray.cluster_resources(), demand)}) within {timeout:g} s",
            hint=f"{fix}, or raise resources.placement_timeout_s if nodes are still coming",
        )
    finally:
        remove_placement_group(group)  # Ray Train places its own group; this one only asked
