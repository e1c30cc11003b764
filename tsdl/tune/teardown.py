"""Tear down a trial's nested Ray Train run *before* Tune stops the trial.

Why this exists: a Tune trial here is a function trainable whose thread blocks in
``TorchTrainer.fit()``, while the training runs in a Train V2 controller actor owned by the trial
actor, on workers in a placement group the controller created. When ASHA stops the trial, Tune
kills the trial actor, which kills the controller ungracefully. A placement group is only removed
by Ray once *both* its creator actor and its creator job are dead, so the workers' group stays
reserved until the study's driver exits. Ray Train's safety net (a detached
``PlacementGroupCleaner`` per run) polls the State API, which needs the dashboard; without it
(``ray.init(include_dashboard=False)``, CI, laptops) the cleaner spins forever and the leaked
CPUs starve the next trials: on 2 CPUs the study hangs after the first stopped trial.

The fix uses Ray Train's own graceful path, ``controller.abort()`` (what Ctrl-C on a plain
``fit()`` does), which stops the cleaner, shuts the workers down and removes the placement group:

1. :class:`TrialReportCallback` (in the controller) registers the controller's handle with a
   per-study :class:`TrialRegistry` actor before forwarding each report to Tune, and never blocks
   forever on Tune's size-1 report queue once a stop was requested.
2. :class:`TrainerTeardown` (a Tune callback on the driver) sees every result before Tune acts
   on it; when the result is final (``done``: ASHA stop, max epochs, a stopper) it aborts the
   trial's controller and waits for it, so the resources are free before the next trial starts.
3. The trial function asks :meth:`TrialRegistry.stop_requested` to tell an abort it asked for
   from a real failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ray.tune import Callback
from ray.tune.integration.ray_train import TuneReportCallback

if TYPE_CHECKING:
    from ray.actor import ActorHandle
    from ray.train import Checkpoint, UserCallback
    from ray.train.torch import TorchTrainer

__all__ = [
    "TrainerTeardown",
    "TrialRegistry",
    "TrialReportCallback",
    "fit_in_trial",
    "start_registry",
]

_log = logging.getLogger(__name__)

_ABORT_TIMEOUT_S = 60.0
_PUT_POLL_S = 0.5
_NAMESPACE = "tsdl"


class TrialRegistry:
    """Trial id -> its Train controller, plus the trials whose stop was requested (a Ray actor)."""

    def __init__(self) -> None:
        self._controllers: dict[str, ActorHandle] = {}
        self._stopping: set[str] = set()

    def register(self, trial_id: str, controller: ActorHandle) -> None:
        self._controllers[trial_id] = controller

    def request_stop(self, trial_id: str) -> ActorHandle | None:
        """Mark the trial as stopping; return its live controller (if it registered one)."""
        self._stopping.add(trial_id)
        return self._controllers.pop(trial_id, None)

    def stop_requested(self, trial_id: str) -> bool:
        return trial_id in self._stopping

    def forget(self, trial_id: str) -> None:
        """Drop a trial that starts again (resume) so its stop flag does not linger."""
        self._stopping.discard(trial_id)
        self._controllers.pop(trial_id, None)

    def registered(self) -> list[str]:
        return sorted(self._controllers)


def start_registry(name: str) -> ActorHandle:
    """The study's registry actor (0 CPU), owned by the driver: it dies with it.

    It is found by ``name`` rather than passed around as a handle, so the callbacks Tune pickles
    into its experiment state still work after ``Tuner.restore`` in a new driver.
    """
    import ray

    actor = ray.remote(num_cpus=0)(TrialRegistry)
    return actor.options(name=name, namespace=_NAMESPACE, get_if_exists=True).remote()


def _registry(name: str) -> ActorHandle:
    import ray

    return ray.get_actor(name, namespace=_NAMESPACE)


class TrialReportCallback(TuneReportCallback):
    """Tune's ``TuneReportCallback`` that registers its controller and can be aborted mid-put.

    Tune's callback puts each report on a size-1 queue with a blocking ``put``. After ASHA stops
    a trial, nobody drains that queue, and a controller blocked in ``put`` cannot process its
    ``abort()``; this one puts with a timeout and gives up once the trial is stopping.

    Args:
        trial_id: the Tune trial this Train run belongs to.
        registry: name of the study's :class:`TrialRegistry` actor.
    """

    def __init__(self, trial_id: str, registry: str) -> None:
        super().__init__()
        self._trial_id = trial_id
        self._registry_name = registry
        self._registry: ActorHandle | None = None

    def after_report(
        self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Checkpoint | None
    ) -> None:
        import ray
        from ray.tune.integration.ray_train import CHECKPOINT_PATH_KEY
        from ray.util.queue import Full

        if self._registry is None:  # runs in the controller actor, before Tune can see a result
            self._registry = _registry(self._registry_name)
            controller = ray.get_runtime_context().current_actor
            ray.get(self._registry.register.remote(self._trial_id, controller))
        item = dict(metrics[0])
        if checkpoint is not None:
            item[CHECKPOINT_PATH_KEY] = checkpoint.path
        while True:
            try:
                self._training_actor_item_queue.put(item, timeout=_PUT_POLL_S)
                return
            except Full:
                if ray.get(self._registry.stop_requested.remote(self._trial_id)):
                    return


class TrainerTeardown(Callback):
    """Abort a trial's Train controller as soon as Tune decides the trial is done.

    Tune calls ``on_trial_result`` after the scheduler's decision (``result["done"]`` is set for a
    stop) and before it stops the trial actor, so the abort runs while the controller is alive.
    ``on_trial_complete``/``on_trial_error`` repeat it for trials that end another way.

    Args:
        registry: name of the study's :class:`TrialRegistry` actor.
        timeout_s: how long to wait for a graceful abort before killing the controller.
    """

    def __init__(self, registry: str, *, timeout_s: float = _ABORT_TIMEOUT_S) -> None:
        self._registry_name = registry
        self._timeout_s = timeout_s
        self.aborted: list[str] = []

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        import ray

        ray.get(_registry(self._registry_name).forget.remote(trial.trial_id))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("done"):
            self._teardown(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._teardown(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._teardown(trial.trial_id)

    def _teardown(self, trial_id: str) -> None:
        import ray

        controller = ray.get(_registry(self._registry_name).request_stop.remote(trial_id))
        if controller is None:
            return
        start = time.monotonic()
        try:
            ray.get(controller.abort.remote(), timeout=self._timeout_s)
        except ray.exceptions.RayActorError:
            pass  # abort() ends with exit_actor(): the controller is gone, as intended
        except ray.exceptions.GetTimeoutError:
            _log.warning(
                "trial %s: Train controller did not abort within %.0f s; killing it (its "
                "placement group is freed when the study's driver exits)",
                trial_id,
                self._timeout_s,
            )
            ray.kill(controller, no_restart=True)
        self.aborted.append(trial_id)
        _log.debug("trial %s: trainer torn down in %.2f s", trial_id, time.monotonic() - start)


def fit_in_trial(build: Callable[[Sequence[UserCallback]], TorchTrainer], registry: str) -> None:
    """Run a trial's TorchTrainer from inside a Tune function trainable.

    Args:
        build: ``build(callbacks) -> TorchTrainer``; the callbacks must reach the trainer's
            ``RunConfig`` (they forward every report to Tune).
        registry: name of the study's :class:`TrialRegistry` actor.

    Raises:
        Whatever ``fit()`` raised, unless the study's driver aborted the run because Tune stopped
        the trial (ASHA): that ends the trial function quietly.
    """
    import ray
    from ray import tune

    trial_id = tune.get_context().get_trial_id()
    trainer = build([TrialReportCallback(trial_id, registry)])
    try:
        trainer.fit()
    except Exception:
        if ray.get(_registry(registry).stop_requested.remote(trial_id)):
            return
        raise
