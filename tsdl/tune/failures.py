"""One line per failed trial attempt instead of Ray's traceback (N9).

Tune logs every failed trial attempt with `logger.error("Trial task failed for trial X",
exc_info=...)` from its control loop, even when it then retries the trial and the study succeeds:
a worker pod lost on Kubernetes printed a screen of `ActorDiedError` traceback under --quiet. Without
--verbose this module drops that record (the traceback stays in the trial's error.txt) and prints
`trial X: worker lost, retrying (1/2)` when Tune retries (`worker lost (its node was preempted,
not counted as a failure), retrying (0/2)` for a drained node, which Tune does not count), or
`trial X: failed (...), no retries left` when it gives up.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from ray.tune import Callback

__all__ = ["TrialFailureLines", "failure_reason", "install_failure_filter"]

_TUNE_LOGGER = "ray.tune.execution.tune_controller"
_PREFIX = "Trial task failed for trial "
_LOST = ("ActorDiedError", "NodeDiedError", "ActorUnavailableError", "WorkerCrashedError", "RayActorError")


def failure_reason(exc: BaseException | None) -> str:
    """``worker lost`` for a dead actor, node or worker process; else the error's first line."""
    if exc is None:
        return "failed"
    names = {cls.__name__ for cls in type(exc).__mro__}
    text = " ".join(str(exc).split())
    if names & set(_LOST) or "node has died" in text or "its node has died" in text:
        # A drained node (SIGTERM: a pod deleted, a spot node reclaimed) is a preemption, which
        # Tune does not count against max_failures: say so, or "retrying (0/2)" reads as a bug.
        if getattr(exc, "preempted", False):
            return "worker lost (its node was preempted, not counted as a failure)"
        return "worker lost"
    return f"failed ({type(exc).__name__}: {text[:120]})"


class _Reasons(logging.Filter):
    """Drops Tune's per-attempt traceback, keeping why the attempt failed for the line."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(_PREFIX):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        self.reasons[message[len(_PREFIX) :]] = failure_reason(exc)
        from tsdl.ray_connection import is_verbose

        return is_verbose()


_FILTER = _Reasons()


def install_failure_filter() -> None:
    """Attach the filter to Tune's controller logger once per process."""
    logger = logging.getLogger(_TUNE_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)


class TrialFailureLines(Callback):
    """Prints one line per failed trial attempt (always, also under --quiet: a retry is news)."""

    def __init__(self, max_failures: int, *, stream: TextIO | None = None, final: bool = True) -> None:
        self._max = max_failures
        self._stream = stream
        self._final = final

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        limit = "unlimited" if self._max < 0 else str(self._max)
        self._print(f"trial {trial.trial_id}: {self._reason(trial)}, retrying ({trial.num_failures}/{limit})")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if self._final:  # the study reporter, when on, prints the failed trial's own line
            self._print(f"trial {trial.trial_id}: {self._reason(trial)}, no retries left")

    def _reason(self, trial: Any) -> str:
        return _FILTER.reasons.pop(str(trial), "failed")

    def _print(self, text: str) -> None:
        print(text, file=self._stream or sys.stdout, flush=True)
