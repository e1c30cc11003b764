"""On 2 CPUs, ASHA-stopped trials must give their trainer's CPUs back or the study hangs.

The trainer here is a stand-in: a 1-worker TorchTrainer whose loop reports a val_loss that
decreases with the epoch, scaled by the trial's parameter, so ASHA has clear losers to stop.
"""

from __future__ import annotations

import time

import pytest

from tsdl.config import TsdlConfig
from tsdl.errors import TuneError
from tsdl.tune.resources import max_concurrent_trials, trial_resources, worker_group_demand
from tsdl.tune.teardown import TrainerTeardown, fit_in_trial, start_registry

MAX_EPOCHS = 4


def _stand_in_loop(config: dict) -> None:
    import ray.train

    for epoch in range(1, config["epochs"] + 1):
        time.sleep(0.2)
        ray.train.report({"epoch": epoch, "val_loss": config["scale"] / epoch})


def _stand_in_trial(config: dict, *, registry, storage: str) -> None:
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer

    def build(callbacks):
        return TorchTrainer(
            _stand_in_loop,
            train_loop_config={"scale": config["scale"], "epochs": MAX_EPOCHS},
            scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
            run_config=ray.train.RunConfig(
                name=tune.get_context().get_trial_name(), storage_path=storage, callbacks=list(callbacks)
            ),
        )

    fit_in_trial(build, registry)


def _live_placement_groups() -> list[dict]:
    import ray

    return [pg for pg in ray.util.placement_group_table().values() if pg["state"] != "REMOVED"]


def _live_actors(class_name: str, *, ignore: frozenset[str] = frozenset()) -> list[dict]:
    """Live actors of `class_name`, except those in `ignore` (alive before this test started:
    the session's Ray is shared with earlier tests, whose runs may still be shutting down)."""
    import ray

    actors = ray._private.state.actors().values()
    return [
        a
        for a in actors
        if a["ActorClassName"] == class_name and a["State"] != "DEAD" and a["ActorID"] not in ignore
    ]


@pytest.mark.ray
@pytest.mark.timeout(900)
@pytest.mark.slow(seconds=66)
def test_asha_stopped_trials_release_their_worker_groups(ray_local, tmp_path) -> None:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    before = frozenset(a["ActorID"] for c in ("TrainController", "RayTrainWorker") for a in _live_actors(c))
    registry = start_registry("teardown-test")
    teardown = TrainerTeardown("teardown-test")
    concurrency = max_concurrent_trials(TsdlConfig(), ray.cluster_resources())
    assert concurrency == 2  # two 1-CPU worker groups on 2 CPUs; trial actors hold no CPU
    # Best first: trials 3 and 4 start only after 1 and 2 passed the first rung, and fall below
    # it, so ASHA stops at least two trials (4 trials: each one is a worker-group start, ~20 s).
    scales = [1.0, 2.0, 3.0, 4.0]
    trainable = tune.with_parameters(_stand_in_trial, registry="teardown-test", storage=str(tmp_path / "train"))
    tuner = tune.Tuner(
        tune.with_resources(trainable, trial_resources()),
        param_space={"scale": tune.grid_search(scales)},
        tune_config=tune.TuneConfig(
            metric="val_loss",
            mode="min",
            max_concurrent_trials=concurrency,
            scheduler=ASHAScheduler(time_attr="epoch", grace_period=1, reduction_factor=2, max_t=MAX_EPOCHS),
        ),
        run_config=tune.RunConfig(
            name="teardown", storage_path=str(tmp_path / "tune"), callbacks=[teardown], verbose=0
        ),
    )
    results = tuner.fit()

    assert len(results) == len(scales)
    assert results.errors == []
    epochs = [r.metrics["epoch"] for r in results]
    stopped = [e for e in epochs if e < MAX_EPOCHS]
    assert len(stopped) >= 2, f"ASHA stopped too few trials: epochs run {epochs}"
    assert len(teardown.aborted) >= len(stopped)
    deadline = time.monotonic() + 10  # the last aborts' removals are asynchronous in the GCS
    while _live_placement_groups() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _live_placement_groups() == []
    assert _live_actors("TrainController", ignore=before) == []
    assert _live_actors("RayTrainWorker", ignore=before) == []
    assert ray.get(registry.registered.remote()) == []


def test_trial_actor_reserves_no_cpu() -> None:
    request = trial_resources()
    assert request.required_resources.get("CPU", 0.0) == 0.0
    assert request.required_resources.get("GPU", 0.0) == 0.0


def test_concurrency_counts_worker_groups() -> None:
    config = TsdlConfig.model_validate({"resources": {"num_workers": 2, "cpus_per_worker": 1.5}})
    assert worker_group_demand(config) == {"CPU": 3.0}
    assert max_concurrent_trials(config, {"CPU": 8.0}) == 2
    capped = config.model_copy(update={"tune": config.tune.model_copy(update={"max_concurrent_trials": 1})})
    assert max_concurrent_trials(capped, {"CPU": 8.0}) == 1
    gpu = TsdlConfig.model_validate({"resources": {"use_gpu": True, "gpus_per_worker": 1.0}})
    assert max_concurrent_trials(gpu, {"CPU": 16.0, "GPU": 3.0}) == 3


def test_concurrency_error_names_the_demand() -> None:
    config = TsdlConfig.model_validate({"resources": {"num_workers": 4}})
    with pytest.raises(TuneError, match=r"CPU=4 .* cluster has CPU=2"):
        max_concurrent_trials(config, {"CPU": 2.0})
