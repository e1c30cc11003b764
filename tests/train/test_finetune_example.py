"""The fine-tuning example (examples/finetune_ot.sh + three configs) holds together without training:
the parent and the child share an architecture, fine-tune and scratch see the same data, and the
OT split is the last 20% of train with the standard val/test windows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tsdl.config import load_config
from tsdl.data import run_checklist

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
ETTH1 = REPO_ROOT / ".." / "shared" / "data" / "ETTh1.csv"


def test_parent_and_child_share_the_model_and_child_and_scratch_the_data() -> None:
    pretrain, finetune, scratch = (load_config(EXAMPLES / f) for f in (
        "etth1_pretrain.yaml", "etth1_finetune_ot.yaml", "etth1_scratch_ot.yaml"))
    assert finetune.model == pretrain.model == scratch.model
    assert finetune.data == scratch.data  # same OT hours, same val/test windows
    assert "OT" not in pretrain.data.series_cols and finetune.data.series_cols == ["OT"]
    assert (finetune.data.split.skip_rows, finetune.data.split.train_rows) == (6912, 1728)
    assert finetune.training.max_epochs == scratch.training.max_epochs


@pytest.mark.skipif(not ETTH1.exists(), reason="ETTh1 benchmark data not found (../shared is absent in a user's clone)")
def test_ot_split_is_the_last_fifth_of_train_with_the_standard_test_windows() -> None:
    config = load_config(EXAMPLES / "etth1_finetune_ot.yaml", ["data.dataset=", f"data.path={ETTH1.resolve()}"])
    splits = run_checklist(config).splits
    assert {s: splits[s]["n_windows"] for s in splits} == {"train": 1728 - 336 - 96 + 1, "val": 2785, "test": 2785}
    assert splits["train"]["start"] == "2017-04-15 00:00:00"  # row 6912 of ETTh1
    assert splits["test"]["start"] == "2017-10-24 00:00:00"  # the standard test segment


def test_script_refuses_a_missing_file_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(["bash", str(EXAMPLES / "finetune_ot.sh"), str(tmp_path / "nope.csv")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"finetune_ot.sh: no such file: {tmp_path / 'nope.csv'} (give the path of ETTh1.csv, or no argument)"]
