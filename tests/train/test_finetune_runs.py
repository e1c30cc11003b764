"""Fine-tuning on the real path: Ray Train workers, MLflow lineage, DDP, zero-shot evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tsdl import api
from tsdl.data import prepare_data
from tsdl.errors import ConfigError
from tsdl.train import build_trainer, load_forecaster
from tsdl.train.checkpointing import load_best
from tsdl.train.pretrained import prepare_finetune_data

pytestmark = [pytest.mark.ray]

_MODEL = {"name": "nhits", "hidden_size": 16, "n_blocks": 2}


@pytest.fixture(scope="module")
def parent(ray_local, tmp_path_factory):
    """One pretrained N-HiTS run (tracked in MLflow) shared by the module's fine-tunes."""
    from tests.train.conftest import small_config

    tmp = tmp_path_factory.mktemp("parent")
    config = small_config(tmp, model=_MODEL)
    return config, api.train(config, progress=False)


def _child(parent_config, **finetune):
    return parent_config.model_copy(
        update={"finetune": parent_config.finetune.model_copy(update=finetune)}
    )


def _metric(config, run_id: str, name: str) -> float:
    from mlflow import MlflowClient

    return MlflowClient(config.tracking.tracking_uri).get_run(run_id).data.metrics[name]


def test_child_starts_from_parent_freezes_backbone_and_records_lineage(parent) -> None:
    from mlflow import MlflowClient

    parent_config, parent_result = parent
    config = _child(parent_config, scalers="parent", freeze=["backbone"], head_lr=0.005)
    child = api.train(config, progress=False, init_from=parent_result.mlflow_run_id)

    # Weights really load: the untouched parent weights score the parent's best val_loss.
    assert _metric(config, child.mlflow_run_id, "init_val_loss") == pytest.approx(
        parent_result.best_val_loss, rel=1e-6
    )
    before, after = (
        load_best(parent_result.checkpoint_dir).model,
        load_best(child.checkpoint_dir).model,
    )
    lineage = child.extras["lineage"]
    frozen = [n for n in before if n.rsplit(".", 1)[0] in lineage["frozen_modules"]]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)
    assert any(not torch.equal(before[n], after[n]) for n in before if n not in frozen)

    client = MlflowClient(config.tracking.tracking_uri)
    run = client.get_run(child.mlflow_run_id)
    uri = f"runs:/{parent_result.mlflow_run_id}/checkpoint"
    assert run.data.tags["tsdl.parent_run_id"] == parent_result.mlflow_run_id
    assert run.data.tags["tsdl.parent_checkpoint_uri"] == uri
    assert run.data.tags["tsdl.frozen_modules"] == ",".join(lineage["frozen_modules"])
    assert run.data.params["finetune.init_from"] == parent_result.mlflow_run_id
    manifest = json.loads(
        Path(client.download_artifacts(run.info.run_id, "manifest.json")).read_text()
    )
    assert manifest["lineage"]["parent_run_id"] == parent_result.mlflow_run_id
    assert manifest["lineage"]["parent_checkpoint_uri"] == uri
    assert manifest["lineage"]["frozen_modules"] == lineage["frozen_modules"]


@pytest.mark.slow(seconds=30)
def test_ddp_child_from_checkpoint_dir_unfreezes_on_schedule(parent, tmp_path: Path) -> None:
    parent_config, parent_result = parent
    config = _child(parent_config, scalers="parent", freeze=["backbone"], unfreeze_epoch=3)
    config = config.model_copy(
        update={"resources": config.resources.model_copy(update={"num_workers": 2})}
    )
    child = api.train(config, progress=False, init_from=str(parent_result.checkpoint_dir))
    assert _metric(config, child.mlflow_run_id, "init_val_loss") == pytest.approx(
        parent_result.best_val_loss, rel=1e-6
    )
    assert child.extras["lineage"]["parent_run_id"] is None
    assert child.extras["lineage"]["parent_checkpoint_uri"] == str(parent_result.checkpoint_dir)
    # Epoch 3 trains the backbone too, so (with 3 epochs) it moved unless the best epoch came earlier.
    before, after = (
        load_best(parent_result.checkpoint_dir).model,
        load_best(child.checkpoint_dir).model,
    )
    backbone = [n for n in before if ".mlp." in n]
    moved = any(not torch.equal(before[n], after[n]) for n in backbone)
    assert moved == (load_best(child.checkpoint_dir).epoch >= 3)


def test_mismatched_parent_fails_before_training(parent) -> None:
    parent_config, parent_result = parent
    config = parent_config.model_copy(deep=True)
    config.data.output_chunk_length = 6
    with pytest.raises(
        ConfigError, match=r"does not fit this model: \d+ with another shape \(blocks\.0\.forecast"
    ):
        api.train(config, progress=False, init_from=parent_result.mlflow_run_id)


def test_zero_shot_evaluate_on_new_series(parent) -> None:
    parent_config, parent_result = parent
    same = api.evaluate(
        parent_config,
        run_id=parent_result.mlflow_run_id,
        tracking_uri=parent_config.tracking.tracking_uri,
    )
    assert same.model["MSE"] == pytest.approx(parent_result.test.model["MSE"], rel=1e-6)
    new = parent_config.model_copy(deep=True)
    new.data.synthetic.seed, new.data.synthetic.n_series = 11, 2  # series the parent never saw
    zero_shot = api.evaluate(
        new, run_id=parent_result.mlflow_run_id, tracking_uri=parent_config.tracking.tracking_uri
    )
    # The parent's weights (from its checkpoint dir, not the MLflow download) on the new series'
    # test windows, scaled by scalers refit on their own train split (finetune.scalers="refit").
    model, loss, _, _ = load_forecaster(parent_result.checkpoint_dir)
    windows = prepare_data(new).windows("test")
    batch = windows.batch_at(np.arange(len(windows)))
    with torch.no_grad():
        point = loss.point(model(batch.past, batch.future, batch.static)).numpy()
    expected = float(np.mean((point - batch.target.numpy()) ** 2))
    assert zero_shot.n_windows == len(windows) > 0
    assert zero_shot.model["MSE"] == pytest.approx(expected, rel=1e-5)
    assert zero_shot.model["MSE"] != pytest.approx(same.model["MSE"], rel=1e-3)


@pytest.mark.slow(seconds=25)
def test_build_trainer_loads_init_from_directory(parent, tmp_path: Path) -> None:
    """What a Tune trial does: build_trainer from a config whose finetune.init_from is a directory."""
    parent_config, parent_result = parent
    config = _child(parent_config, init_from=str(parent_result.checkpoint_dir), head_lr=1e-4)
    config = config.model_copy(
        update={"tracking": config.tracking.model_copy(update={"enabled": False})}
    )
    prepared = prepare_finetune_data(config, None)
    trainer = build_trainer(config, prepared, run_name="trial", storage_path=str(tmp_path))
    init_state = trainer.train_loop_config["init_state"]
    best = load_best(parent_result.checkpoint_dir).model
    assert init_state.keys() == best.keys() and all(
        torch.equal(init_state[k], best[k]) for k in best
    )
    result = trainer.fit()
    assert result.metrics["epoch"] == parent_config.training.max_epochs


def test_a_fine_tune_that_never_beats_its_start_keeps_the_parent(parent) -> None:
    """The parent's weights are validated before epoch 1 and stay best.pt unless an epoch beats them."""
    from tsdl.cli.train_cmd import _summary

    parent_config, parent_result = parent
    config = _child(parent_config, scalers="parent")
    config = config.model_copy(update={"training": config.training.model_copy(update={
        "max_epochs": 2, "optimizer": config.training.optimizer.model_copy(update={"lr": 0.5})})})
    child = api.train(config, progress=False, init_from=str(parent_result.checkpoint_dir))

    assert [h["val_loss"] > parent_result.best_val_loss for h in child.history] == [True, True]
    assert [int(h["best_epoch"]) for h in child.history] == [0, 0]
    best, start = load_best(child.checkpoint_dir), load_best(parent_result.checkpoint_dir)
    assert best.epoch == 0 and best.val_loss == pytest.approx(parent_result.best_val_loss, rel=1e-6)
    assert all(torch.equal(best.model[k], start.model[k]) for k in start.model)
    # Same data and scalers as the parent: the test score is the parent's own.
    assert child.test.model["MSE"] == pytest.approx(parent_result.test.model["MSE"], rel=1e-6)
    assert "no epoch beat the starting model" in _summary(child)
    assert "no epoch beat the starting model" not in _summary(parent_result)


def test_init_from_run_id_is_found_in_the_explicit_tracking_store(parent, tmp_path: Path, monkeypatch) -> None:
    """`tsdl train --init-from RUN --tracking-uri STORE` (examples/finetune_hufl.sh) downloads the parent
    from STORE, whatever $MLFLOW_TRACKING_URI and tracking.tracking_uri say (before: "not found")."""
    parent_config, parent_result = parent
    store = parent_config.tracking.tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    config = _child(parent_config, scalers="parent")
    config = config.model_copy(update={
        "tracking": config.tracking.model_copy(update={"tracking_uri": f"sqlite:///{tmp_path / 'cfg.db'}"}),
        "training": config.training.model_copy(update={"max_epochs": 1}),
    })
    child = api.train(config, progress=False, init_from=parent_result.mlflow_run_id, tracking_uri=store)
    assert child.extras["lineage"]["parent_run_id"] == parent_result.mlflow_run_id
    assert _metric(parent_config, child.mlflow_run_id, "init_val_loss") == pytest.approx(
        parent_result.best_val_loss, rel=1e-6
    )
