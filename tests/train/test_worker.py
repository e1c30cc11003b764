"""The per-worker loop's set-up and ending, without Ray: per-rank batch, flushing the logger."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from tests.train.conftest import small_config
from tsdl.data import prepare_data
from tsdl.train.runtime import InProcessRuntime
from tsdl.train.trainer import make_loop_config
from tsdl.train.worker import _Worker, run_worker


class _TwoRanks(InProcessRuntime):
    """Rank 0 of 2 as the loop sees it (no process group: the all-reduces are no-ops)."""

    world = 2


def test_each_of_n_ranks_gets_a_global_batch_over_n(tmp_path: Path) -> None:
    config = small_config(tmp_path, training__batch_size=32)
    prepared = prepare_data(config)
    loop_config = make_loop_config(config, prepared)
    runtime = _TwoRanks(prepared, device=torch.device("cpu"), checkpoint=None, report=lambda m, c: None)
    assert _Worker.build(config, loop_config, runtime).batch_size == 16  # the global batch stays 32


@dataclass
class _Recorder:
    calls: list = field(default_factory=list)

    def log_epoch(self, epoch, metrics) -> None:
        self.calls.append(("epoch", epoch))

    def log_step(self, step, metrics) -> None:
        self.calls.append(("step", step))

    def flush(self) -> None:
        self.calls.append(("flush",))


@dataclass(frozen=True)
class _Factory:
    recorder: _Recorder

    def __call__(self, *, rank: int) -> _Recorder:
        return self.recorder


@dataclass(frozen=True)
class _FailAt:
    epoch: int

    def __call__(self, epoch: int, rank: int) -> None:
        if epoch == self.epoch:
            raise RuntimeError("injected")


@pytest.mark.parametrize("fail_at", [None, 2])
def test_the_logger_is_flushed_before_the_loop_returns_or_raises(tmp_path: Path, fail_at: int | None) -> None:
    # The driver marks the MLflow run FAILED/KILLED right after: buffered rows must be written first.
    config = small_config(tmp_path, training__max_epochs=2, training__log_every_n_steps=1)
    prepared = prepare_data(config)
    recorder = _Recorder()
    hooks = (_FailAt(fail_at),) if fail_at else ()
    loop_config = make_loop_config(config, prepared, logger_factory=_Factory(recorder), epoch_hooks=hooks)
    runtime = InProcessRuntime(prepared, device=torch.device("cpu"), checkpoint=None, report=lambda m, c: None)
    if fail_at:
        with pytest.raises(RuntimeError, match="injected"):
            run_worker(loop_config, runtime)
    else:
        run_worker(loop_config, runtime)
    assert recorder.calls[-1] == ("flush",)
    assert ("step", 1) in recorder.calls
