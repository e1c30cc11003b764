"""N9: a lost worker is one line, `trial X: worker lost, retrying (1/2)`, not Ray's traceback."""

from __future__ import annotations

import io
import logging

import pytest
from ray.exceptions import ActorDiedError

from tsdl.tune.failures import TrialFailureLines, failure_reason, install_failure_filter


@pytest.fixture
def tune_log(monkeypatch):
    """Tune's controller logger with a handler that records what would reach the terminal."""
    monkeypatch.delenv("TSDL_VERBOSE", raising=False)
    logger = logging.getLogger("ray.tune.execution.tune_controller")
    shown = io.StringIO()
    handler = logging.StreamHandler(shown)
    logger.addHandler(handler)
    install_failure_filter()
    yield logger, shown
    logger.removeHandler(handler)


class _Trial:
    """What the callback reads of a Tune Trial: its id, failure count and name (str)."""

    def __init__(self, name: str, failures: int) -> None:
        self.name, self.trial_id, self.num_failures = name, name.rsplit("_", 1)[-1], failures

    def __str__(self) -> str:
        return self.name


def test_a_lost_worker_is_one_line_and_no_traceback(tune_log) -> None:
    logger, shown = tune_log
    out = io.StringIO()
    lines = TrialFailureLines(2, stream=out)
    logger.error("Trial task failed for trial run_trial_a1b2c_00001", exc_info=ActorDiedError())
    lines.on_trial_recover(1, [], _Trial("run_trial_a1b2c_00001", 1))
    assert shown.getvalue() == ""  # no traceback on the terminal
    assert out.getvalue() == "trial 00001: worker lost, retrying (1/2)\n"


def test_a_preempted_node_says_why_the_retry_is_not_counted(tune_log) -> None:
    """A pod deleted on Kubernetes drains its Ray node (SIGTERM): Tune's ActorDiedError is
    `preempted` and Tune does not count it, so the retry line reads (0/2): it must say why."""
    logger, _ = tune_log
    out = io.StringIO()
    lines = TrialFailureLines(2, stream=out)
    lost = ActorDiedError()
    lost._preempted = True  # what Ray sets from the actor's death cause (node drained)
    logger.error("Trial task failed for trial run_trial_a1b2c_00004", exc_info=lost)
    lines.on_trial_recover(1, [], _Trial("run_trial_a1b2c_00004", 0))
    assert out.getvalue() == (
        "trial 00004: worker lost (its node was preempted, not counted as a failure), retrying (0/2)\n"
    )


def test_verbose_keeps_rays_traceback(tune_log, monkeypatch) -> None:
    logger, shown = tune_log
    monkeypatch.setenv("TSDL_VERBOSE", "1")
    logger.error("Trial task failed for trial t_00002", exc_info=ActorDiedError())
    assert "ActorDiedError" in shown.getvalue()


def test_other_failures_name_the_error_and_the_last_attempt(tune_log) -> None:
    logger, _ = tune_log
    out = io.StringIO()
    lines = TrialFailureLines(0, stream=out)
    try:
        raise RuntimeError("CUDA out of memory.\nTried to allocate 2 GiB")
    except RuntimeError as exc:
        logger.error("Trial task failed for trial t_00003", exc_info=exc)
    lines.on_trial_error(1, [], _Trial("t_00003", 1))
    assert out.getvalue() == "trial 00003: failed (RuntimeError: CUDA out of memory. Tried to allocate 2 GiB), no retries left\n"
    assert failure_reason(None) == "failed"
