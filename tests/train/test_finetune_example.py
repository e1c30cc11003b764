"""The fine-tuning example (examples/finetune_hufl.sh + three configs): the configs hold together,
the split is the one docs/finetuning.md describes, and (a small-data version of the example, on
ETTh1) fine-tuning beats zero-shot, scratch and seasonal naive on the same HUFL test windows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tsdl import api
from tsdl.config import load_config
from tsdl.data import run_checklist

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
ETTH1 = REPO_ROOT / ".." / "shared" / "data" / "ETTh1.csv"
_needs_etth1 = pytest.mark.skipif(
    not ETTH1.exists(), reason="ETTh1 benchmark data not found (../shared is absent in a user's clone)")


def test_parent_and_child_share_the_model_and_child_and_scratch_the_data() -> None:
    pretrain, finetune, scratch = (load_config(EXAMPLES / f) for f in (
        "etth1_pretrain.yaml", "etth1_finetune_hufl.yaml", "etth1_scratch_hufl.yaml"))
    assert finetune.model == pretrain.model == scratch.model
    assert finetune.data == scratch.data  # same HUFL hours, same val/test windows
    assert "HUFL" not in pretrain.data.series_cols and finetune.data.series_cols == ["HUFL"]
    split = finetune.data.split
    assert (split.skip_rows, split.train_rows, split.val_rows, split.test_rows) == (8640, 1728, 1152, 2880)
    assert finetune.training.max_epochs == scratch.training.max_epochs
    assert finetune.training.batch_size == scratch.training.batch_size


@_needs_etth1
def test_hufl_split_is_ten_weeks_before_the_standard_test_windows() -> None:
    config = load_config(EXAMPLES / "etth1_finetune_hufl.yaml", ["data.dataset=", f"data.path={ETTH1.resolve()}"])
    splits = run_checklist(config).splits
    assert {s: splits[s]["n_windows"] for s in splits} == {
        "train": 1728 - 336 - 96 + 1, "val": 1152 - 96 + 1, "test": 2785}
    assert splits["train"]["start"] == "2017-06-26 00:00:00"  # row 8640: the standard val segment's start
    assert splits["val"]["start"] == "2017-09-06 00:00:00"  # row 10368
    assert splits["test"]["start"] == "2017-10-24 00:00:00"  # row 11520: the standard test segment


@pytest.mark.slow
@_needs_etth1
def test_fine_tuning_beats_zero_shot_scratch_and_naive_on_a_small_pretraining(tmp_path: Path) -> None:
    """The example's claim, with the pretraining cut to 2 epochs of 40 batches (the full example
    pretrains for up to 10 epochs; docs/finetuning.md has its numbers). The fine-tune and scratch
    runs are the shipped configs; all four numbers are on the same HUFL test windows."""
    sets = ["data.dataset=", f"data.path={ETTH1.resolve()}", "tracking.enabled=false",
            f"resources.storage_path={tmp_path / 'results'}"]
    parent = api.train(load_config(EXAMPLES / "etth1_pretrain.yaml", [
        *sets, "training.max_epochs=2", "training.limit_train_batches=40"]), progress=False)
    hufl = load_config(EXAMPLES / "etth1_finetune_hufl.yaml", sets)
    zero_shot = api.evaluate(hufl, checkpoint=parent.checkpoint_dir)
    tuned = api.train(hufl, progress=False, init_from=str(parent.checkpoint_dir))
    scratch = api.train(load_config(EXAMPLES / "etth1_scratch_hufl.yaml", sets), progress=False)

    assert zero_shot.n_windows == tuned.test.n_windows == scratch.test.n_windows == 2785
    assert zero_shot.baseline["MSE"] == tuned.test.baseline["MSE"] == scratch.test.baseline["MSE"]
    mse = {"zero-shot": zero_shot.model["MSE"], "fine-tuned": tuned.test.model["MSE"],
           "scratch": scratch.test.model["MSE"], "seasonal-naive": tuned.test.baseline["MSE"]}
    assert min(mse, key=mse.get) == "fine-tuned", mse
    assert int(tuned.history[-1]["best_epoch"]) >= 1  # an epoch beat the parent on validation


def test_script_refuses_a_missing_file_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(EXAMPLES / "finetune_hufl.sh"), str(tmp_path / "nope.csv")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"finetune_hufl.sh: no such file: {tmp_path / 'nope.csv'} (give the path of ETTh1.csv, or no argument)"]
