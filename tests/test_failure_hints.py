"""A failure wrapped on its way up keeps exactly one fix: the inner error's own, never a second.

The wrappers are the real ones (api's worker-failure line, ray_connection's start-up error) fed
the real Ray exception types a worker's error arrives in.
"""

from __future__ import annotations

import os
import pickle

import pytest
import ray
from ray.exceptions import RayTaskError
from ray.train.v2.api.exceptions import WorkerGroupError

from tsdl import api
from tsdl.errors import DataError, TrainingError
from tsdl.ray_connection import ensure_ray
from tsdl.train import NonFiniteLoss


def _nan() -> NonFiniteLoss:
    return NonFiniteLoss("training loss became non-finite (nan) by global step 32",
                         change="lower training.optimizer.lr (now 5)")


def _from_ray_workers(exc: BaseException) -> WorkerGroupError:
    """How Ray Train hands a worker's exception to ``trainer.fit()``'s caller (pickled, wrapped)."""
    inner = RayTaskError("train_fn", "Traceback (most recent call last): ...", pickle.loads(pickle.dumps(exc)))
    return WorkerGroupError("worker 0 failed", {1: RuntimeError("peer gone"), 0: inner.as_instanceof_cause()})


def test_a_nan_loss_from_a_tracked_run_names_the_doctor_for_that_run() -> None:
    line = api._worker_failure(_from_ray_workers(_nan()), "r1", "abc123").one_line()
    assert line.count("(fix:") == 1, line
    assert "training loss became non-finite" in line and "lower training.optimizer.lr (now 5)" in line
    assert "`tsdl doctor --run-id abc123`" in line and "--resume" not in line, line


def test_a_nan_loss_in_process_without_tracking_names_the_doctor_on_the_config() -> None:
    line = api._worker_failure(_nan(), "r1", None).one_line()
    assert line.count("(fix:") == 1 and "`tsdl doctor -c CONFIG`" in line, line


def test_a_worker_tsdl_error_keeps_its_own_fix_and_a_crash_gets_resume() -> None:
    data = DataError("window 3 has NaN targets", hint="set data.missing: interpolate")
    line = api._worker_failure(_from_ray_workers(data), "r1", "abc").one_line()
    assert line == "training run 'r1' failed: window 3 has NaN targets (fix: set data.missing: interpolate)"
    crash = api._worker_failure(RuntimeError("CUDA error: an illegal memory access"), "r1", "abc").one_line()
    assert crash.endswith("(fix: fix the cause, then continue with `tsdl train --resume r1`)"), crash


def test_a_fix_that_only_survives_as_text_is_not_doubled() -> None:
    text_only = RuntimeError("Traceback ...\nDataError: bad window (fix: set data.missing: interpolate)")
    line = api._worker_failure(text_only, "r1", None).one_line()
    assert line == "training run 'r1' failed: DataError: bad window (fix: set data.missing: interpolate)"


def test_non_finite_loss_survives_pickling_with_its_fix() -> None:
    """Ray pickles a worker's exception; the fix and `for_run` must come through."""
    copy = pickle.loads(pickle.dumps(_nan()))
    assert copy.hint == _nan().hint and copy.change == "lower training.optimizer.lr (now 5)"
    assert copy.for_run("xyz").hint.endswith("diagnose with `tsdl doctor --run-id xyz`")


def test_ray_start_timeout_is_one_fix_not_wrapped_in_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """_start_local's TrainingError after three missed 30 s windows passed ensure_ray's generic
    `except Exception`, which appended "see the logs ..." as a second fix."""
    for name in ("RAY_TRAIN_V2_ENABLED", "RAY_DEDUP_LOGS"):
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)

    def init(**kwargs: object) -> None:
        raise Exception("The current node timed out during startup.")  # Ray's own bare Exception

    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(TrainingError) as caught:
        ensure_ray(None)
    line = caught.value.one_line()
    assert line.count("(fix:") == 1 and "did not start within Ray's 30 s window" in line, line
