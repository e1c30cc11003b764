"""Trial concurrency under an autoscaler: sized from what the cluster may grow to, not from the
pods that run at start, so Tune asks for the worker groups that make the autoscaler scale up."""

from __future__ import annotations

import json

import pytest

from tsdl.config import parse_config
from tsdl.deploy import build_manifests
from tsdl.deploy.access import with_worker_gpus
from tsdl.deploy.rayjob import autoscaler_capacity as deploy_capacity
from tsdl.errors import TuneError
from tsdl.tune.resources import (
    AUTOSCALER_CAPACITY_ENV,
    autoscaler_capacity,
    max_concurrent_trials,
    worker_group_demand,
)

# One GPU trial; the head has no CPUs for trials and no GPU (num-cpus 0, num-gpus 0).
GPU_TRIAL = parse_config(
    {"resources": {"use_gpu": True, "num_workers": 1, "gpus_per_worker": 1, "cpus_per_worker": 4}}
)
HEAD_ONLY = {"CPU": 0.0, "memory": 8e9}  # minReplicas 0: no worker pod at start


def test_without_an_autoscaler_a_gpu_less_start_fails_at_once() -> None:
    with pytest.raises(TuneError, match="GPU=0"):
        max_concurrent_trials(GPU_TRIAL, HEAD_ONLY)


def test_with_an_autoscaler_concurrency_follows_its_upper_bound() -> None:
    capacity = {"CPU": 32.0, "GPU": 4.0}  # maxReplicas 4 pods x (8 CPU, 1 GPU)
    assert max_concurrent_trials(GPU_TRIAL, HEAD_ONLY, capacity=capacity) == 4
    # What those trials request in all is exactly what the autoscaler can add: it scales to max.
    demand = worker_group_demand(GPU_TRIAL)
    assert demand["GPU"] * 4 == capacity["GPU"] and demand["CPU"] * 4 <= capacity["CPU"]
    # Pods already running count too, and tune.max_concurrent_trials still caps.
    assert max_concurrent_trials(GPU_TRIAL, {"CPU": 64.0, "GPU": 8.0}, capacity=capacity) == 8
    capped = parse_config(
        {**GPU_TRIAL.model_dump(mode="json"), "tune": {"max_concurrent_trials": 2}}
    )
    assert max_concurrent_trials(capped, HEAD_ONLY, capacity=capacity) == 2


def test_a_trial_the_autoscaler_can_never_fit_still_fails() -> None:
    with pytest.raises(TuneError, match="one trial needs"):
        max_concurrent_trials(GPU_TRIAL, HEAD_ONLY, capacity={"CPU": 2.0, "GPU": 4.0})


def test_capacity_comes_from_the_environment() -> None:
    assert autoscaler_capacity({}) is None
    assert autoscaler_capacity({AUTOSCALER_CAPACITY_ENV: '{"CPU": 16, "GPU": 2}'}) == {
        "CPU": 16.0,
        "GPU": 2.0,
    }
    with pytest.raises(TuneError, match=AUTOSCALER_CAPACITY_ENV) as caught:
        autoscaler_capacity({AUTOSCALER_CAPACITY_ENV: "lots"})
    assert "\n" not in caught.value.one_line()


def test_the_deployed_head_carries_the_worker_groups_upper_bound() -> None:
    config = parse_config(
        {
            **GPU_TRIAL.model_dump(mode="json", exclude={"deploy"}),
            "deploy": {
                "autoscaling": True,
                "worker": {"replicas": 0, "min_replicas": 0, "max_replicas": 4, "cpu": "7500m"},
                "storage": {"uri": "s3://tsdl-results/runs"},  # several nodes need shared storage
            },
        }
    )
    job = build_manifests(config)[-1]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in head["env"]}
    capacity = autoscaler_capacity(env)
    assert capacity == {"CPU": 32.0, "GPU": 4.0}  # KubeRay rounds 7.5 CPUs up to 8 per pod
    assert json.loads(deploy_capacity(with_worker_gpus(config).deploy)) == capacity
    with pytest.raises(ValueError, match="with_worker_gpus"):  # unresolved: GPU=0 was a silent wrong answer
        deploy_capacity(config.deploy)
    assert max_concurrent_trials(config, HEAD_ONLY, capacity=capacity) == 4
    worker = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    assert AUTOSCALER_CAPACITY_ENV not in {e["name"] for e in worker["containers"][0]["env"]}
    fixed = build_manifests(parse_config(GPU_TRIAL.model_dump(mode="json", exclude={"deploy"})))
    fixed_head = fixed[-1]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert AUTOSCALER_CAPACITY_ENV not in {e["name"] for e in fixed_head["containers"][0]["env"]}


CPU_TRIAL = parse_config({"resources": {"num_workers": 1, "cpus_per_worker": 1}})


def _fake_cluster(monkeypatch: pytest.MonkeyPatch, *, connected: bool) -> tuple[dict, list]:
    """A Ray whose head is back but whose worker has not rejoined yet (CPU=0), as after KubeRay
    recreates a lost head pod; `reserve_worker_group` is where the worker comes back."""
    import ray

    from tsdl.tune import runner

    resources: dict[str, float] = {"CPU": 0.0}
    waits: list[str] = []

    def rejoin(config) -> None:
        waits.append(config.experiment.name)
        resources["CPU"] = 4.0

    monkeypatch.setattr(ray, "cluster_resources", lambda: dict(resources))
    monkeypatch.setattr(runner, "connected_cluster", lambda: connected)
    monkeypatch.setattr(runner, "autoscaler_capacity", lambda: None)
    monkeypatch.setattr(runner, "reserve_worker_group", rejoin)
    return resources, waits


def test_on_a_cluster_whose_workers_have_not_rejoined_the_study_waits_instead_of_failing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found by the cluster e2e (scenario 3): the resumed study failed 'the Ray cluster has CPU=0'.
    from tsdl.tune.runner import trial_concurrency

    _, waits = _fake_cluster(monkeypatch, connected=True)
    assert trial_concurrency(CPU_TRIAL) == 4
    assert waits == [CPU_TRIAL.experiment.name]


def test_on_this_machine_a_trial_that_cannot_fit_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tsdl.tune.runner import trial_concurrency

    _, waits = _fake_cluster(monkeypatch, connected=False)
    with pytest.raises(TuneError, match="CPU=0"):
        trial_concurrency(CPU_TRIAL)
    assert waits == []
