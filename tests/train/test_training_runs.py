"""Real training runs on a local 2-CPU Ray: end to end, determinism, faults, resume, DDP parity.

The single-worker cases run on the paths a `tsdl train` can take (`path`): in the driver
(`tsdl.train.in_process`) and in a 1-worker TorchTrainer (`--address auto` on the test's Ray);
each checks which process trained, so a change to the path choice cannot quietly move them.
Determinism and restart-after-failure run in the driver only: on the Ray Train path the 2-worker
SIGKILL test below checks both (a killed rank restarts from the last checkpoint, and the run's
losses equal those of the same run uninterrupted), so a 1-worker TorchTrainer would repeat them at
~50-80 s each.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from tsdl import api
from tsdl.errors import TrainingError
from tsdl.train.checkpointing import checkpoint_dir_name
from tsdl.train.epoch_hooks import EpochLog, FailOnce, KillOnce, ProcessLog

pytestmark = [pytest.mark.ray]


def _losses(result) -> list[tuple[float, float]]:
    return [(h["train_loss"], h["val_loss"]) for h in result.history]


@pytest.fixture(params=["in_process", "ray_train"])
def path(request, ray_local, tmp_path: Path):
    """``(address, hooks)`` for one path; after the test, asserts which process trained."""
    log = tmp_path / "pids.log"
    yield ("auto" if request.param == "ray_train" else None), (ProcessLog(str(log)),)
    pids = {int(x) for x in log.read_text().split()}
    assert (pids == {os.getpid()}) == (request.param == "in_process"), (request.param, pids)


@pytest.mark.slow(seconds=27)
def test_train_end_to_end(path, make_config) -> None:
    address, hooks = path
    config = make_config(training__max_epochs=2)
    result = api.train(config, address=address, epoch_hooks=hooks, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all(math.isfinite(v) for pair in _losses(result) for v in pair)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert (result.checkpoint_dir / "best.pt").exists() and (result.checkpoint_dir / "last.pt").exists()
    ev = result.test
    assert ev.n_windows > 0
    assert {"MAE", "MSE", "RMSE", "sMAPE", "MASE"} <= set(ev.model)
    assert {"MAE", "MSE"} <= set(ev.model_original) and {"MAE"} <= set(ev.baseline)
    # Original-scale errors differ from the normalized ones (the synthetic series have levels != 0).
    assert ev.model_original["MAE"] != pytest.approx(ev.model["MAE"])
    _assert_mlflow_run_is_complete(config, result)


def _assert_mlflow_run_is_complete(config, result) -> None:
    """Everything issue #3 lists, read back through MlflowClient."""
    import json

    import yaml
    from mlflow import MlflowClient

    client = MlflowClient(config.tracking.tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["architecture"] == "dlinear" and tags["dataset_name"] == "synthetic"
    assert params["training.optimizer.lr"] == "0.001" and params["model.name"] == "dlinear"
    assert {"system.hostname", "system.torch_version", "system.ray_version", "system.cpu_count"} <= set(params)
    assert params["data_stats.n_series"] == "4"
    for name in ("train_loss", "val_loss", "grad_norm", "lr", "epoch_time_s", "windows_per_s"):
        history = client.get_metric_history(run.info.run_id, name)
        assert [m.step for m in history] == [1, 2], name
    for name in ("MAE", "MSE", "RMSE", "sMAPE", "MASE"):
        assert f"test_{name}" in metrics and f"test_{name}_original" in metrics
        assert f"test_naive_{name}" in metrics
    files = _artifact_paths(client, run.info.run_id)
    expected = {
        "config.yaml", "system_info.json", "data_stats.json", "manifest.json", "features.json",
        "scalers.json", "test_metrics.txt", "checkpoint/best.pt", "checkpoint/last.pt",
        "plots/learning_curve.png", "plots/forecast_vs_actual.png",
    }
    assert expected <= files, expected - files
    local = Path(client.download_artifacts(run.info.run_id, "config.yaml"))
    assert yaml.safe_load(local.read_text())["training"]["max_epochs"] == 2
    manifest = json.loads(Path(client.download_artifacts(run.info.run_id, "manifest.json")).read_text())
    assert manifest["seed"] == 7 and len(manifest["data_hash"]) == 64
    assert manifest["torch_threads"] >= 1  # the count it trained with (--reproduce restores it)
    # The AdamW kernel it trained with (`auto` resolved: fused on CPU), and no torch.compile.
    assert (manifest["optimizer_implementation"], manifest["compile"]) == ("fused", False)
    assert yaml.safe_load(local.read_text())["training"]["optimizer"]["implementation"] == "fused"
    assert set(manifest["split_boundaries"]) == {"train", "val", "test"}
    assert "skill" in Path(client.download_artifacts(run.info.run_id, "test_metrics.txt")).read_text()


def _artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


@pytest.mark.parametrize("path", ["in_process"], indirect=True)  # Ray Train: the SIGKILL test below
def test_same_seed_gives_identical_epoch_losses(path, make_config) -> None:
    address, hooks = path
    run = lambda **o: api.train(  # noqa: E731
        make_config(**{"tracking__enabled": False, "training__max_epochs": 2, **o}), address=address,
        epoch_hooks=hooks, progress=False,
    )
    first, second = run(), run()
    assert _losses(first) == _losses(second)
    third = run(training__seed=8, training__max_epochs=1)
    assert _losses(third)[0] != _losses(first)[0]


@pytest.mark.parametrize("path", ["in_process"], indirect=True)  # Ray Train: the SIGKILL test below
def test_worker_failure_resumes_from_last_checkpoint(path, make_config, tmp_path: Path) -> None:
    address, hooks = path
    config = make_config(resources__max_failures=1, tracking__enabled=False)
    hooks = (*hooks, EpochLog(str(tmp_path / "started.log")), FailOnce(2, str(tmp_path / "marker")))
    result = api.train(config, address=address, epoch_hooks=hooks, progress=False)
    started = [int(x) for x in (tmp_path / "started.log").read_text().split()]
    assert started == [1, 2, 2, 3]  # epoch 2 was interrupted, then restarted from epoch 1's checkpoint
    assert [h["epoch"] for h in result.history] == [1, 2, 3]  # no finished epoch repeated


@pytest.mark.slow(seconds=40)
def test_resume_continues_an_interrupted_run(path, make_config, tmp_path: Path) -> None:
    address, hooks = path
    config = make_config(tracking__enabled=False)
    hooks = (*hooks, EpochLog(str(tmp_path / "started.log")), FailOnce(2, str(tmp_path / "marker")))
    with pytest.raises(TrainingError, match="resume"):
        api.train(config, address=address, run_name="interrupted", epoch_hooks=hooks, progress=False)
    resumed = api.train(config, address=address, resume="interrupted", epoch_hooks=hooks, progress=False)
    started = [int(x) for x in (tmp_path / "started.log").read_text().split()]
    assert started == [1, 2, 2, 3]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


@pytest.mark.slow(seconds=77)
def test_killed_worker_process_resumes_without_losing_or_repeating_a_finished_epoch(
    ray_local, make_config, tmp_path: Path
) -> None:
    # A DDP run (2 workers: Ray Train, not the in-process path); rank 1's process is SIGKILLed
    # shortly after epoch 3 starts. Ray restarts the group from the last committed checkpoint.
    # The same run uninterrupted first: Ray Train runs are deterministic run to run, and a
    # restart from a checkpoint changes no loss (weights, optimizer, RNG and data order restored).
    config = make_config(
        training__max_epochs=5, resources__num_workers=2, resources__max_failures=1, tracking__enabled=False
    )
    uninterrupted = api.train(config, progress=False)
    marker = tmp_path / "killed"
    hooks = (EpochLog(str(tmp_path / "started.log")), KillOnce(3, str(marker), rank=1, delay_s=0.05))
    result = api.train(config, epoch_hooks=hooks, progress=False)
    assert marker.exists(), "the worker was never killed"
    started = [int(x) for x in (tmp_path / "started.log").read_text().split()]
    restart = next(i for i in range(1, len(started)) if started[i] <= started[i - 1])
    resumed_at = started[restart]
    assert started[:restart] == list(range(1, restart + 1)), started  # in order until the kill
    assert started[restart:] == list(range(resumed_at, 6)), started  # then on from the checkpoint
    # Resumed at the epoch the kill interrupted: every finished epoch was checkpointed before it,
    # even those Ray had not registered yet (tsdl.train.recovery).
    assert resumed_at == started[restart - 1] >= 3, started
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5]  # none repeated, none lost
    assert _losses(result) == _losses(uninterrupted)
    # The unregistered checkpoints the kill left behind are cleaned up: only the final one stays.
    run_dir = Path(config.resources.storage_path) / result.run_name
    assert sorted(p.name for p in run_dir.glob("checkpoint_epoch-*")) == [checkpoint_dir_name(5)]

