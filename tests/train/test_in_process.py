"""The in-process path: when a run takes it, and what `fit_in_process` does that Ray Train would.

Each condition of the path choice is checked alone; `fit_in_process` is run for real on tiny data
(2 epochs, no Ray): it keeps only the newest checkpoint, cleans a staging copy a kill left, does
not retry a MemoryError, and trains with the thread count of the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.train.conftest import small_config
from tsdl.config import TsdlConfig
from tsdl.data import prepare_data
from tsdl.train.checkpointing import checkpoint_dir_name
from tsdl.train.epoch_hooks import EpochLog
from tsdl.train.in_process import fit_in_process, trains_in_process
from tsdl.train.trainer import make_loop_config


def _config(tmp_path: Path, **overrides) -> TsdlConfig:
    return small_config(tmp_path, **{"training__max_epochs": 2, "tracking__enabled": False, **overrides})


def test_one_local_worker_trains_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert trains_in_process(_config(tmp_path), None)


@pytest.mark.parametrize(
    ("why", "overrides", "address", "env"),
    [
        ("--address", {}, "auto", None),
        ("resources.address", {"resources__address": "ray://head:10001"}, None, None),
        ("$RAY_ADDRESS", {}, None, "127.0.0.1:6379"),
        ("two workers need DDP", {"resources__num_workers": 2}, None, None),
        ("a GPU", {"resources__use_gpu": True}, None, None),
        ("URI storage", {"resources__storage_path": "s3://bucket/runs"}, None, None),
    ],
)
def test_each_condition_sends_the_run_to_ray_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, why: str, overrides: dict, address: str | None, env: str | None
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if env is not None:
        monkeypatch.setenv("RAY_ADDRESS", env)
    assert not trains_in_process(_config(tmp_path, **overrides), address), why


def test_a_tune_trial_trains_in_process_whenever_it_has_one_worker(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a trial runs on the cluster
    assert trains_in_process(_config(tmp_path, resources__use_gpu=True), "auto", in_trial=True)
    assert not trains_in_process(_config(tmp_path, resources__num_workers=2), None, in_trial=True)


def _fit(config: TsdlConfig, run_dir: Path, hooks=(), max_failures: int = 0):
    prepared = prepare_data(config)
    return fit_in_process(make_loop_config(config, prepared, epoch_hooks=hooks), prepared,
                          run_dir=run_dir, max_failures=max_failures)


@dataclass(frozen=True)
class _Threads:
    """Records torch's thread count at the start of every epoch."""

    seen: list

    def __call__(self, epoch: int, rank: int) -> None:
        self.seen.append(torch.get_num_threads())


def test_only_the_newest_checkpoint_is_kept_and_no_staging_copy(tmp_path: Path) -> None:
    run_dir = tmp_path / "results" / "r1"
    (run_dir / f".{checkpoint_dir_name(1)}.tmp").mkdir(parents=True)  # left by a kill mid-save
    seen: list[int] = []
    result = _fit(_config(tmp_path, resources__torch_threads=1), run_dir, hooks=(_Threads(seen),))
    assert sorted(p.name for p in run_dir.iterdir()) == [checkpoint_dir_name(2)]
    assert Path(result.checkpoint.path).name == checkpoint_dir_name(2)
    assert seen == [1, 1]  # the config's count, not the host's cores


@dataclass(frozen=True)
class _OutOfMemory:
    def __call__(self, epoch: int, rank: int) -> None:
        if epoch == 2:
            raise MemoryError("injected")


def test_a_memory_error_is_not_retried_in_the_same_process(tmp_path: Path) -> None:
    log = tmp_path / "started.log"
    with pytest.raises(MemoryError):
        _fit(_config(tmp_path, resources__torch_threads=1), tmp_path / "r", hooks=(EpochLog(str(log)), _OutOfMemory()),
             max_failures=3)
    assert log.read_text().split() == ["1", "2"]  # never restarted


def test_a_checkpoint_whose_best_weights_never_arrived_is_not_resumed_from(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    config = _config(tmp_path, resources__torch_threads=1)
    _fit(config, run_dir)
    (run_dir / checkpoint_dir_name(2) / "best.pt").unlink()  # the usual state after a cut upload
    log = tmp_path / "started.log"
    result = _fit(config, run_dir, hooks=(EpochLog(str(log)),))
    assert log.read_text().split() == ["1", "2"]  # no complete checkpoint: trained from the start
    assert (Path(result.checkpoint.path) / "best.pt").exists()
