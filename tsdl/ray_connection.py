"""Connecting to Ray: in-process for laptops and CI, `auto` for `ray start --head`, ray:// for clusters."""

from __future__ import annotations

import logging
import os
import signal
import threading

from tsdl.errors import TrainingError, TsdlError

__all__ = ["configure_output", "ensure_ray", "is_verbose"]

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
    address: str | None = None, *, num_cpus: int | None = None, log_to_driver: bool | None = None
) -> None:
    """Start or join Ray once per process.

    Args:
        address: None starts an in-process Ray; "auto" joins a local `ray start --head` cluster;
            "ray://host:10001" connects a Ray client. Inside a RayJob, RAY_ADDRESS is set.
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
    try:
        if address is None and not os.environ.get("RAY_ADDRESS"):
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
