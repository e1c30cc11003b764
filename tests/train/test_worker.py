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


def test_the_gradient_norm_is_computed_only_where_it_is_reported(tmp_path: Path, monkeypatch) -> None:
    """Without clipping the norm is read at logging steps and for the epoch's metric only: 8 steps
    logged every 3 compute it 3 times (steps 3, 6 and the last), not 8, and the epoch's grad_norm
    is still the last step's."""
    config = small_config(tmp_path, training__max_epochs=1, training__log_every_n_steps=3,
                          training__gradient_clip_val=None)
    assert config.training.gradient_clip_val is None
    prepared = prepare_data(config)
    recorder = _Recorder()
    loop_config = make_loop_config(config, prepared, logger_factory=_Factory(recorder))
    runtime = InProcessRuntime(prepared, device=torch.device("cpu"), checkpoint=None, report=lambda m, c: None)
    worker = _Worker.build(config, loop_config, runtime)
    assert worker.steps_per_epoch == 8
    norms = []
    real = torch.linalg.vector_norm

    def counting(*args, **kwargs):
        norms.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.linalg, "vector_norm", counting)
    metrics, _ = worker.run_epoch(1)
    monkeypatch.setattr(torch.linalg, "vector_norm", real)
    n_params = sum(1 for p in worker.model.parameters() if p.grad is not None)
    assert len(norms) == 3 * (n_params + 1)  # one per parameter (Tensor.norm) and one over them
    assert [c[1] for c in recorder.calls if c[0] == "step"] == [3, 6]
    last = real(torch.stack([p.grad.norm() for p in worker.model.parameters() if p.grad is not None]))
    assert metrics["grad_norm"] == pytest.approx(float(last), rel=1e-6) and metrics["grad_norm"] > 0
