"""The checkpoint store both training paths resume from (`tsdl.train.checkpoint_store`).

The end-to-end cases (a SIGKILLed DDP rank, a failed in-process epoch, --resume) are in
test_training_runs.py; these cover the store itself on local disk and on an S3 server (moto on
127.0.0.1): the newest *complete* checkpoint wins, where complete means every file tsdl writes
arrived and loads (object storage leaves whole files or none, so an upload cut short lacks some),
the chosen one is downloaded once, and pruning never deletes Ray's registered checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tests.train.test_checkpointing import _real_checkpoint
from tsdl.train.checkpoint_store import REQUIRED_FILES, CheckpointStore, newest_beside
from tsdl.train.checkpointing import BEST_FILE, LAST_FILE, META_FILE, checkpoint_dir_name


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    for epoch in (1, 2, 3):
        _real_checkpoint(tmp_path / checkpoint_dir_name(epoch))
    return tmp_path


def _chosen(store: CheckpointStore, registered: str | None = None) -> str | None:
    restored = store.choose(registered)
    return None if restored is None else Path(restored.path).name


def test_epoch_names_sort_by_epoch() -> None:
    assert sorted(checkpoint_dir_name(e) for e in (10, 9, 100)) == [checkpoint_dir_name(e) for e in (9, 10, 100)]


def test_the_newest_complete_checkpoint_wins_over_an_older_registered_one(run_dir: Path) -> None:
    store = CheckpointStore.at(run_dir)
    assert _chosen(store, str(run_dir / checkpoint_dir_name(1))) == checkpoint_dir_name(3)
    assert _chosen(store) == checkpoint_dir_name(3)  # the newest, never the oldest


def test_the_chosen_checkpoint_is_loaded_whole(run_dir: Path) -> None:
    restored = CheckpointStore.at(run_dir).choose()
    assert restored is not None and restored.last.epoch == 3 and restored.best.epoch >= 1


@pytest.mark.parametrize("missing", [BEST_FILE, META_FILE, LAST_FILE])
def test_a_checkpoint_missing_a_file_is_skipped(run_dir: Path, missing: str) -> None:
    # Each object of an upload cut short is there whole or not at all.
    (run_dir / checkpoint_dir_name(3) / missing).unlink()
    assert _chosen(CheckpointStore.at(run_dir)) == checkpoint_dir_name(2)


def test_a_checkpoint_cut_short_by_the_failure_is_skipped(run_dir: Path) -> None:
    newest = run_dir / checkpoint_dir_name(3) / BEST_FILE
    newest.write_bytes(newest.read_bytes()[:100])  # a truncated file (a local disk filled up)
    (run_dir / checkpoint_dir_name(4)).mkdir()  # the next one had not started writing files
    assert _chosen(CheckpointStore.at(run_dir), str(run_dir / checkpoint_dir_name(1))) == checkpoint_dir_name(2)


def test_a_trial_resumes_from_its_newest_checkpoint_even_one_tune_never_registered(tmp_path: Path) -> None:
    """Tune logs a trial's result, then fetches its checkpoint: a worker lost in between leaves
    checkpoint_000002 persisted but unregistered, and Tune hands back checkpoint_000001."""
    from ray.tune import Checkpoint

    trial = tmp_path / "trial_00000"
    for index in range(3):
        _real_checkpoint(trial / f"checkpoint_{index:06d}")
    (trial / "checkpoint_000003").mkdir()  # the next one had not started writing files
    registered = Checkpoint(str(trial / "checkpoint_000001"))
    restored = newest_beside(registered)
    assert restored is not None and Path(restored.path).name == "checkpoint_000002"
    (trial / "checkpoint_000002" / BEST_FILE).unlink()  # that upload cut short: the registered one
    assert Path(newest_beside(registered).path).name == "checkpoint_000001"  # type: ignore[union-attr]
    assert newest_beside(None) is None


def test_a_registered_checkpoint_without_an_epoch_name_is_the_fallback(tmp_path: Path) -> None:
    legacy = tmp_path / "checkpoint_2026-11-30_10-00-00.000000"
    _real_checkpoint(legacy)
    store = CheckpointStore.at(tmp_path)
    assert _chosen(store, str(legacy)) == legacy.name
    assert _chosen(store) is None


def test_pruning_keeps_the_chosen_and_the_registered_one_however_spelled(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "alias").symlink_to(run_dir)
    spellings = [
        f"{run_dir / checkpoint_dir_name(1)}/",
        f"{run_dir}/x/../{checkpoint_dir_name(1)}",
        str(tmp_path / "alias" / checkpoint_dir_name(1)),
    ]
    for registered in spellings:
        store = CheckpointStore.at(run_dir)
        assert [c.epoch for c in store.candidates(registered) if c.registered] == [1], registered
        store.prune(str(run_dir / checkpoint_dir_name(3)), registered=registered)
        kept = sorted(p.name for p in run_dir.glob("checkpoint_*"))
        assert kept == [checkpoint_dir_name(1), checkpoint_dir_name(3)], registered
        _real_checkpoint(run_dir / checkpoint_dir_name(2))


def test_pruning_and_saving_leave_no_staging_directories(run_dir: Path, tmp_path_factory) -> None:
    (run_dir / f".{checkpoint_dir_name(7)}.tmp").mkdir()  # a save killed mid-copy
    source = tmp_path_factory.mktemp("written")
    _real_checkpoint(source)
    store = CheckpointStore.at(run_dir)
    saved = store.save(source, 4)
    store.prune(saved)
    assert sorted(p.name for p in run_dir.iterdir()) == [checkpoint_dir_name(4)]


def test_on_s3_an_upload_cut_short_is_skipped_and_the_choice_downloads_once(
    s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local"
    for epoch in (1, 2, 3):
        _real_checkpoint(local / checkpoint_dir_name(epoch))
    store = CheckpointStore.at(s3.uri("runs/r1"))
    for epoch in (1, 2, 3):
        store.save(local / checkpoint_dir_name(epoch), epoch)
    assert sorted(s3.keys("runs/r1/")) == sorted(
        f"runs/r1/{checkpoint_dir_name(e)}/{name}" for e in (1, 2, 3) for name in REQUIRED_FILES
    )
    s3.client.delete_object(Bucket=s3.bucket, Key=f"runs/r1/{checkpoint_dir_name(3)}/{BEST_FILE}")
    downloads = []
    copy_files = pafs.copy_files
    monkeypatch.setattr(pafs, "copy_files", lambda *a, **k: downloads.append(a[0]) or copy_files(*a, **k))
    restored = store.choose()
    assert restored is not None and restored.path.endswith(checkpoint_dir_name(2))
    assert len(downloads) == 1  # epoch 3 was refused from its listing, epoch 2 fetched once
    store.prune(restored.path, registered=f"{s3.bucket}/runs/r1/{checkpoint_dir_name(1)}/")
    left = {k.split("/")[2] for k in s3.keys("runs/r1/")} - {""}  # "": the directory marker pyarrow leaves
    assert left == {checkpoint_dir_name(1), checkpoint_dir_name(2)}, left


def test_the_resumed_from_checkpoint_is_never_the_staging_copy(run_dir: Path) -> None:
    # A staging directory holds a full copy; it must never be listed as a checkpoint.
    os.rename(run_dir / checkpoint_dir_name(3), run_dir / f".{checkpoint_dir_name(3)}.tmp")
    assert [c.epoch for c in CheckpointStore.at(run_dir).candidates()] == [2, 1]
