"""The checkpoint a restarted worker group resumes from (`tsdl.train.recovery`).

The end-to-end case (a SIGKILLed DDP rank) is in test_training_runs.py; these cover the choice
itself: the newest complete epoch checkpoint wins over Ray's older registered one, a checkpoint
cut short by the failure is skipped, and a registered one from before epoch names still counts.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tests.train.test_checkpointing import _real_checkpoint
from tsdl.train.checkpointing import LAST_FILE, checkpoint_dir_name
from tsdl.train.recovery import _candidates, _choose


class _Registered:
    """What ``ray.train.get_checkpoint()`` returns, as far as the choice looks at it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    for epoch in (1, 2, 3):
        _real_checkpoint(tmp_path / checkpoint_dir_name(epoch))
    return tmp_path


def _choice(run_dir: Path, registered: Path | None) -> tuple[str, bool] | None:
    fs = pafs.LocalFileSystem()
    candidates = _candidates(fs, str(run_dir), _Registered(registered) if registered else None)
    return _choose(candidates, fs)


def test_epoch_names_sort_by_epoch() -> None:
    assert sorted(checkpoint_dir_name(e) for e in (10, 9, 100)) == [checkpoint_dir_name(e) for e in (9, 10, 100)]


def test_the_newest_complete_checkpoint_wins_over_an_older_registered_one(run_dir: Path) -> None:
    assert _choice(run_dir, run_dir / checkpoint_dir_name(1)) == (str(run_dir / checkpoint_dir_name(3)), False)


def test_the_registered_checkpoint_is_chosen_when_it_is_the_newest(run_dir: Path) -> None:
    assert _choice(run_dir, run_dir / checkpoint_dir_name(3)) == (str(run_dir / checkpoint_dir_name(3)), True)


def test_a_checkpoint_cut_short_by_the_failure_is_skipped(run_dir: Path) -> None:
    newest = run_dir / checkpoint_dir_name(3) / LAST_FILE
    newest.write_bytes(newest.read_bytes()[:100])  # the upload was interrupted
    (run_dir / checkpoint_dir_name(4)).mkdir()  # the next one had not started writing files
    assert _choice(run_dir, run_dir / checkpoint_dir_name(1)) == (str(run_dir / checkpoint_dir_name(2)), False)


def test_a_registered_checkpoint_without_an_epoch_name_is_the_fallback(tmp_path: Path) -> None:
    legacy = tmp_path / "checkpoint_2026-11-30_10-00-00.000000"
    _real_checkpoint(legacy)
    assert _choice(tmp_path, legacy) == (str(legacy), True)
    assert _choice(tmp_path, None) is None
