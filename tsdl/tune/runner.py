"""One stage of a study as a Ray Tune experiment: OptunaSearch (TPE) + ASHA over training trials."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from tsdl.config import TsdlConfig
from tsdl.config.tune import ParamSpec
from tsdl.ray_connection import connected_cluster, is_verbose, reserve_worker_group
from tsdl.tune.budget import StudyPlan
from tsdl.tune.progress import StudyProgress
from tsdl.tune.resources import (
    autoscaler_capacity,
    direct_trial_resources,
    max_concurrent_trials,
    trial_resources,
)
from tsdl.tune.space import same_point, to_tune_space

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from tsdl.data import PreparedData

__all__ = ["StageRunner", "build_scheduler", "build_searcher"]


class _ReferenceASHA(ASHAScheduler):
    """ASHA that lets the reference trial run to ``max_t`` (its results still fill the rungs)."""

    def __init__(self, *, reference: dict[str, Any] | None, max_t: int, **kwargs: Any) -> None:
        super().__init__(max_t=max_t, **kwargs)
        self._reference = reference
        self._reference_max_t = max_t

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if (
            decision == TrialScheduler.STOP
            and self._reference is not None
            and result.get("epoch", 0) < self._reference_max_t
            and same_point(trial.config, self._reference)
        ):
            return TrialScheduler.CONTINUE
        return decision


def build_scheduler(
    plan: StudyPlan,
    *,
    reference: Mapping[str, Any] | None = None,
    metric: str = "val_loss",
    mode: str = "min",
):
    """ASHA (Li et al., 2020) on ``metric`` with epochs as the time attribute.

    The ``reference`` trial is never cut before ``max_epochs``: "best vs reference" compares
    against the config's own values trained on the full per-trial budget.
    """
    return _ReferenceASHA(
        reference=dict(reference) if reference else None,
        time_attr="epoch",
        metric=metric,
        mode=mode,
        max_t=plan.max_epochs,
        grace_period=plan.grace_period,
        reduction_factor=plan.reduction_factor,
    )


def build_searcher(
    space: Mapping[str, ParamSpec],
    *,
    points: Sequence[Mapping[str, Any]],
    startup: int,
    seed: int,
    metric: str = "val_loss",
    mode: str = "min",
):
    """OptunaSearch with a seeded TPE sampler; ``points`` run first (the reference trial)."""
    import optuna
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    if not is_verbose():  # "A new study created in memory" per stage: nothing to act on
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    return OptunaSearch(
        space=to_tune_space(space),
        metric=metric,
        mode=mode,
        points_to_evaluate=[dict(p) for p in points] or None,
        sampler=TPESampler(seed=seed, n_startup_trials=max(startup, 1)),
    )


def trial_concurrency(config: TsdlConfig) -> int:
    """How many trials run at once on the connected Ray (`max_concurrent_trials`).

    A cluster without an autoscaler may still be coming together: after KubeRay recreates a lost
    head pod, the workers rejoin seconds later and until then the cluster shows CPU=0, which
    would refuse a study that only needs to resume. On a cluster tsdl waits for one trial's group
    first (at most ``resources.placement_timeout_s``, saying so); on this machine it refuses at once.
    """
    import ray

    capacity = autoscaler_capacity()
    if capacity is None and connected_cluster():
        reserve_worker_group(config)
    return max_concurrent_trials(config, ray.cluster_resources(), capacity=capacity)


class StageRunner:
    """Runs or restores the stages of one study under ``root`` with shared data and a registry.

    Args:
        config: the study's base config.
        plan: the resolved budget.
        prepared: scaled data per input_chunk_length (shared with trials through the object store).
        root: ``<storage>/<study>``; stage experiments and trial Train runs live under it.
        progress: print a line per finished trial and a status line (tsdl.tune.progress).
    """

    def __init__(
        self,
        config: TsdlConfig,
        plan: StudyPlan,
        prepared: Mapping[int, PreparedData],
        *,
        root: str,
        progress: bool,
    ) -> None:
        from tsdl.tune.teardown import start_registry

        self._config = config
        self._plan = plan
        self._root = root
        self._registry = f"tsdl-trials-{root.rstrip('/').rsplit('/', 1)[-1]}"
        self._registry_actor = start_registry(self._registry)  # keep the handle: owned by us
        self._prepared = dict(prepared)
        self._concurrency = trial_concurrency(config)
        self._reporter = StudyProgress(plan) if progress else None
        from tsdl.train.in_process import trains_in_process

        self._direct = trains_in_process(config, in_trial=True)

    def run(
        self,
        stage: str,
        space: Mapping[str, ParamSpec],
        *,
        points: Sequence[Mapping[str, Any]],
        trials: int,
        startup: int,
    ) -> ResultGrid:
        """Fit one stage (or restore it: finished trials are kept, unfinished ones resume)."""
        from ray import tune

        from tsdl.storage import join, ray_storage

        root, fs = ray_storage(self._root)  # fs: an object store configured from the environment
        path = join(self._root, stage) if fs is None else join(root, stage)
        if self._reporter is not None:
            self._reporter.begin_stage(stage, reference=points[0] if points else None)
        trainable = self._trainable()
        if tune.Tuner.can_restore(path, storage_filesystem=fs):
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True, storage_filesystem=fs)
        else:
            seed = self._config.tune.seed + (0 if stage == "stage1" else 1)
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=build_searcher(space, points=points, startup=startup, seed=seed),
                    scheduler=build_scheduler(self._plan, reference=points[0] if points else None),
                    num_samples=trials,
                    max_concurrent_trials=self._concurrency,
                    # Direct trials (see tsdl.tune.trial) keep their actor, with torch imported
                    # and the study's data already fetched, for the next trial.
                    reuse_actors=self._direct,
                ),
                run_config=self._run_config(stage, root, fs),
            )
        return tuner.fit()

    def _run_config(self, stage: str, root: str, fs: Any):
        """Direct trials fail over through Tune (from their last checkpoint, like Train does);
        TorchTrainer trials through their own Train run, torn down when Tune stops them."""
        from ray import tune

        from tsdl.tune.failures import TrialFailureLines, install_failure_filter
        from tsdl.tune.teardown import TrainerTeardown

        install_failure_filter()
        lines = TrialFailureLines(self._config.resources.max_failures, final=self._reporter is None)
        callbacks: list = [*filter(None, [self._reporter]), lines]
        extra: dict = {}
        if self._direct:
            extra = {
                "failure_config": tune.FailureConfig(max_failures=self._config.resources.max_failures),
                "checkpoint_config": tune.CheckpointConfig(num_to_keep=1),
            }
        else:
            callbacks.insert(0, TrainerTeardown(self._registry))
        return tune.RunConfig(
            name=stage,
            storage_path=root,
            storage_filesystem=fs,
            callbacks=callbacks,
            verbose=1 if is_verbose() else 0,  # tsdl's StudyProgress replaces Tune's tables
            **extra,
        )

    def close(self) -> None:
        """Stop the study's registry actor (the trials of every stage are done)."""
        import ray

        ray.kill(self._registry_actor, no_restart=True)

    def _trainable(self):
        from ray import tune

        from tsdl.tune.trial import run_trial

        # with_parameters puts the data in the object store once; every trial reads that copy.
        fn = tune.with_parameters(
            run_trial,
            base=self._config.model_dump(mode="json"),
            plan=self._plan,
            prepared=self._prepared,
            registry=self._registry,
            storage_path=f"{self._root}/trials",
        )
        resources = direct_trial_resources(self._config) if self._direct else trial_resources()
        return tune.with_resources(fn, resources)
