"""tsdl's study reporter: the trial line, the 30 s status line, the ETA and the starvation warning."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from tsdl.tune.budget import StudyPlan
from tsdl.tune.progress import StudyProgress, asha_rungs, format_duration, format_trial_line

PLAN = StudyPlan(
    budget="smoke", stage1_trials=6, stage2_trials=2, startup_trials=3, top_k=3, max_params=3,
    max_epochs=4, grace_period=1, reduction_factor=2.0, limit_train_batches=8,
)


@dataclass
class _Trial:
    """The three attributes of a Tune ``Trial`` the reporter reads."""

    trial_id: str
    config: dict[str, Any]
    last_result: dict[str, Any] = field(default_factory=dict)
    status: str = "RUNNING"
    path: str = "/tmp/trial"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rungs_and_durations() -> None:
    assert asha_rungs(PLAN) == [1, 2, 4]
    assert asha_rungs(StudyPlan("small", 20, 8, 6, 3, 3, 12, 2, 3.0, 50)) == [2, 6, 12]
    assert [format_duration(s) for s in (5, 185, 3720)] == ["5s", "3m05s", "1h02m"]


def test_trial_line_has_id_stage_params_loss_epochs_rung_and_time() -> None:
    line = format_trial_line(
        done=3, total=8, trial_id="35397d87", stage="stage1", outcome="asha-stopped", val_loss=0.41234,
        epochs=2, max_epochs=4, rung=2, wall_s=12.3,
        params={"training.optimizer.lr": 0.00123456, "training.batch_size": 64}, reference=True,
    )
    assert line == (
        "[3/8] 35397d87 stage1 asha-stopped  val_loss 0.4123  epochs 2/4  rung 2     12s  "
        "lr=0.001235 batch_size=64  (reference)"
    )


def test_reporter_prints_one_line_per_trial_and_a_throttled_status() -> None:
    clock, out = _Clock(), io.StringIO()
    progress = StudyProgress(PLAN, stream=out, clock=clock)
    progress.begin_stage("stage1", reference={"training.optimizer.lr": 0.001})
    a, b = _Trial("a1", {"training.optimizer.lr": 0.001}), _Trial("b2", {"training.optimizer.lr": 0.01})
    for trial in (a, b):
        progress.on_trial_start(0, [a, b], trial)
    for epoch in (1, 2):
        clock.now += 10
        for trial, loss in ((a, 0.5 / epoch), (b, 0.9)):
            trial.last_result = {"epoch": epoch, "val_loss": loss, "best_val_loss": min(0.5, loss)}
            progress.on_trial_result(0, [a, b], trial, trial.last_result)
        progress.on_step_end(0, [a, b])
    assert out.getvalue() == ""  # 20 s: no status line yet
    b.status = "TERMINATED"
    progress.on_trial_complete(0, [a, b], b)  # cut by ASHA after rung 2
    clock.now += 15
    progress.on_step_end(0, [a, b])  # 35 s since start, but a trial line was printed 15 s ago
    clock.now += 20
    progress.on_step_end(0, [a, b])
    progress.on_step_end(0, [a, b])  # nothing new: no second status line
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/8] b2 stage1 asha-stopped  val_loss 0.5000  epochs 2/4  rung 2")
    # 55 s since start; 4 epochs took 55 s; left: 6 unstarted x 4 + a's 2 = 26 epochs -> 357 s
    assert lines[1] == "study 55s: 1/8 trials done, best val_loss 0.2500 (a1), ETA <= 5m57s"
    assert len(lines) == 2
    a.last_result = {"epoch": 4, "val_loss": 0.2, "best_val_loss": 0.2}
    progress.on_trial_complete(0, [a, b], a)
    progress.on_trial_complete(0, [a, b], a)  # Tune may report a trial twice: printed once
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[2].startswith("[2/8] a1 stage1 completed")
    assert lines[2].endswith("lr=0.001  (reference)")


def test_failed_trial_and_starved_cluster_are_said_in_tsdl_words() -> None:
    clock, out = _Clock(), io.StringIO()
    progress = StudyProgress(PLAN, stream=out, clock=clock)
    trial = _Trial("c3", {"training.batch_size": 32}, status="PENDING")
    progress.on_step_end(0, [trial])
    clock.now += 200
    progress.on_step_end(0, [trial])
    progress.on_step_end(0, [trial])  # warned once; no status line without a finished epoch
    progress.on_trial_error(0, [trial], trial)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("warning: no trial could start for 120s") and "fix: lower them" in lines[0]
    assert lines[1].startswith("[1/8] c3 stage1 failed") and "rung -" in lines[1]
    assert lines[2] == "  error: see /tmp/trial/error.txt"
    assert len(lines) == 3
