"""tsdl's own study reporter: one line per finished trial and a status line at most every 30 s.

Tune's default reporter prints a configuration box and a result box for every trial and a trial
table every few seconds: hundreds of lines for a small study, in which the numbers a user needs
(which params, what val_loss, how far ASHA let the trial run, how long until the study is done)
are hard to find. This Tune callback replaces it (``RunConfig(verbose=0)``). It runs on the
driver, in Tune's control loop, and only formats what Tune already hands it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from ray.tune import Callback

from tsdl.tune.budget import StudyPlan
from tsdl.tune.space import same_point

__all__ = ["StudyProgress", "asha_rungs", "format_duration", "format_params", "format_trial_line"]

STATUS_EVERY_S = 30.0
STARVED_AFTER_S = 120.0


def asha_rungs(plan: StudyPlan) -> list[int]:
    """The epochs at which ASHA compares trials: grace, grace*eta, ... up to max_epochs."""
    rungs: list[int] = []
    rung = float(max(plan.grace_period, 1))
    while rung < plan.max_epochs:
        rungs.append(int(rung))
        rung *= plan.reduction_factor
    return [*rungs, plan.max_epochs]


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a status line."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def format_params(params: Mapping[str, Any]) -> str:
    """``lr=0.001 batch_size=64``: the last part of each dotted path, floats to 4 digits."""
    parts = []
    for path, value in params.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{path.rsplit('.', 1)[-1]}={shown}")
    return " ".join(parts)


def format_trial_line(
    *,
    done: int,
    total: int,
    trial_id: str,
    stage: str,
    outcome: str,
    val_loss: float,
    epochs: int,
    max_epochs: int,
    rung: int | None,
    wall_s: float,
    params: Mapping[str, Any],
    reference: bool = False,
) -> str:
    """One finished (or stopped, or failed) trial, e.g.

    ``[3/8] 35397d87 stage1 asha-stopped val_loss 0.4123 epochs 2/4 rung 2 12s lr=0.001 ...``
    """
    loss = f"{val_loss:.4f}" if math.isfinite(val_loss) else "   nan"
    rung_text = f"rung {rung}" if rung is not None else "rung -"
    mark = "  (reference)" if reference else ""
    return (
        f"[{done}/{total}] {trial_id} {stage} {outcome:<13} val_loss {loss}  "
        f"epochs {epochs}/{max_epochs}  {rung_text}  {format_duration(wall_s):>6}  "
        f"{format_params(params)}{mark}"
    )


class StudyProgress(Callback):
    """Prints each finished trial and, at most every ``status_every_s``, the study's status.

    The status line only comes when an epoch finished since the last one and no other line was
    printed for ``status_every_s`` (a trial line already says how far the study is).

    Args:
        plan: the study's budget (trial count, epochs per trial, ASHA rungs) for done/total and
            the ETA: remaining epochs of the budget times the seconds per epoch measured so far.
            ASHA cuts most trials early, so the ETA is an upper bound ("ETA <=").
        stream: where to print (stdout).
        clock: wall-clock seconds (injectable for tests; wall time survives a pickled restore).
    """

    def __init__(
        self,
        plan: StudyPlan,
        *,
        stream: TextIO | None = None,
        status_every_s: float = STATUS_EVERY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._plan = plan
        self._total = plan.stage1_trials + plan.stage2_trials
        self._rungs = asha_rungs(plan)
        self._stream = stream
        self._every = status_every_s
        self._clock = clock
        self._start = clock()
        self._first_trial: float | None = None
        self._last_status = self._start
        self._stage = "stage1"
        self._reference: dict[str, Any] | None = None
        self._started: dict[str, float] = {}
        self._epochs: dict[str, int] = {}
        self._finished: set[str] = set()
        self._best: tuple[float, str] | None = None
        self._waiting_since: float | None = None
        self._status_epochs = 0
        self._warned_starved = False

    def begin_stage(self, stage: str, *, reference: Mapping[str, Any] | None = None) -> None:
        """Called by the runner before each stage's Tuner starts."""
        self._stage = stage
        self._reference = dict(reference) if reference else None

    # Tune callback hooks (driver side) ----------------------------------------------------------

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        now = self._clock()
        self._started.setdefault(trial.trial_id, now)
        if self._first_trial is None:
            self._first_trial = now

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._epochs[trial.trial_id] = int(result.get("epoch", 0) or 0)
        loss = result.get("val_loss")
        if isinstance(loss, (int, float)) and math.isfinite(loss):
            if self._best is None or loss < self._best[0]:
                self._best = (float(loss), trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=True)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = self._clock()
        self._check_starved(trials, now)
        # At most every `status_every_s` since the last line of any kind, and only with news
        # (another epoch done): a slow or stalled study does not fill the terminal.
        epochs = sum(self._epochs.values())
        if now - self._last_status >= self._every and epochs > self._status_epochs:
            self._status_epochs = epochs
            self._print(self.status_line(now))

    def _check_starved(self, trials: list, now: float) -> None:
        """Tune's own "insufficient resources" warning is hidden with its logs; say it our way."""
        statuses = {getattr(t, "status", "") for t in trials}
        if "RUNNING" in statuses or "PENDING" not in statuses:
            self._waiting_since = None
            return
        if self._waiting_since is None:
            self._waiting_since = now
        elif now - self._waiting_since >= STARVED_AFTER_S and not self._warned_starved:
            self._warned_starved = True
            self._print(
                f"warning: no trial could start for {STARVED_AFTER_S:.0f}s: the Ray cluster lacks the "
                "CPUs/GPUs one trial needs (resources.num_workers x resources.cpus_per_worker / "
                "gpus_per_worker). fix: lower them, or add nodes (`ray status` shows what is free)"
            )

    # Formatting --------------------------------------------------------------------------------

    def status_line(self, now: float | None = None) -> str:
        """``study 2m30s: 3/8 trials done, best val_loss 0.4123 (35397d87), ETA <= 4m10s``."""
        now = self._clock() if now is None else now
        best = f"best val_loss {self._best[0]:.4f} ({self._best[1]})" if self._best else "no val_loss yet"
        return (
            f"study {format_duration(now - self._start)}: {len(self._finished)}/{self._total} trials done, "
            f"{best}, {self._eta(now)}"
        )

    def _eta(self, now: float) -> str:
        run = sum(self._epochs.values())
        if not run or self._first_trial is None or not self._finished:
            # Before a trial ends, the seconds per epoch are mostly worker start-up: no estimate.
            return "ETA after the first trial"
        max_epochs = self._plan.max_epochs
        unstarted = max(self._total - len(self._epochs), 0)
        running = [t for t in self._epochs if t not in self._finished]
        remaining = unstarted * max_epochs + sum(max(max_epochs - self._epochs[t], 0) for t in running)
        per_epoch = (now - self._first_trial) / run
        return f"ETA <= {format_duration(remaining * per_epoch)}"

    def _finish(self, trial: Any, *, failed: bool) -> None:
        trial_id = trial.trial_id
        if trial_id in self._finished:
            return
        self._finished.add(trial_id)
        result = trial.last_result or {}
        epochs = int(result.get("epoch", self._epochs.get(trial_id, 0)) or 0)
        self._epochs[trial_id] = epochs
        loss = result.get("best_val_loss", result.get("val_loss", math.nan))
        loss = float(loss) if isinstance(loss, (int, float)) else math.nan
        if failed:
            outcome = "failed"
        elif epochs >= self._plan.max_epochs:
            outcome = "completed"
        elif result.get("early_stopped"):
            outcome = "early-stopped"
        else:
            outcome = "asha-stopped"
        reached = [r for r in self._rungs if r <= epochs]
        started = self._started.get(trial_id, self._clock())
        line = format_trial_line(
            done=len(self._finished),
            total=self._total,
            trial_id=trial_id,
            stage=self._stage,
            outcome=outcome,
            val_loss=loss,
            epochs=epochs,
            max_epochs=self._plan.max_epochs,
            rung=reached[-1] if reached else None,
            wall_s=self._clock() - started,
            params=trial.config or {},
            reference=self._reference is not None and same_point(trial.config or {}, self._reference),
        )
        if failed and getattr(trial, "path", None):
            line += f"\n  error: see {trial.path}/error.txt"
        self._print(line)

    def _print(self, text: str) -> None:
        self._last_status = self._clock()
        print(text, file=self._stream or sys.stdout, flush=True)
