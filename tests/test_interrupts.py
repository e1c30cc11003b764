"""Ctrl-C/SIGTERM held during a tracking-store write, delivered right after it.

Found by a fresh-clone CI run: a SIGTERM that landed inside MLflow's sqlite commit made MLflow log
"database is locked" with a full traceback before tsdl's one line.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tsdl.interrupts import deferred_interrupts
from tsdl.tracking.worker import log_metrics_at


@pytest.fixture(autouse=True)
def ctrl_c_raises() -> Iterator[None]:
    """Python's own Ctrl-C handler for the test: an earlier ray.init() in the session replaces it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_signal_in_the_block_is_delivered_after_it() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("rest of the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nested_blocks_deliver_once_at_the_outer_end() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        with deferred_interrupts():
            os.kill(os.getpid(), signal.SIGINT)
        done.append("outer block went on")
    assert done == ["outer block went on"]


def test_other_threads_are_left_alone() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with deferred_interrupts():
                pass
        except BaseException as exc:  # signal.signal outside the main thread raises ValueError
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []


def test_ctrl_c_during_a_metrics_write_lands_after_it(tmp_path: Path) -> None:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    real = client.log_batch

    def interrupted_write(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the request is in flight
        return real(*args, **kwargs)

    client.log_batch = interrupted_write
    with pytest.raises(KeyboardInterrupt):
        log_metrics_at(client, run_id, [(1, {"train_loss": 0.5})])
    assert [m.value for m in MlflowClient(client.tracking_uri).get_metric_history(run_id, "train_loss")] == [0.5]


def test_a_second_signal_in_the_block_acts_at_once() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), deferred_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("held")
        os.kill(os.getpid(), signal.SIGINT)  # the user means it: no waiting for the block
        done.append("rest of the block")
    assert done == ["held"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class _HttpClient:
    """An MlflowClient of an HTTP tracking server, as far as log_metrics_at looks at it."""

    tracking_uri = "http://127.0.0.1:9"

    def __init__(self) -> None:
        self.seen: list = []

    def log_batch(self, run_id, metrics) -> None:
        self.seen.append(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES"))
        os.kill(os.getpid(), signal.SIGINT)  # a Ctrl-C while the request waits on the network
        self.seen.append("request went on")


def test_ctrl_c_during_an_http_write_is_not_held() -> None:
    client = _HttpClient()
    with pytest.raises(KeyboardInterrupt):
        log_metrics_at(client, "run", [(1, {"train_loss": 0.5})], bounded=True)
    assert client.seen == ["2"]  # interrupted inside the request, which retried at most twice
    assert os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") != "2"  # restored after the write


def test_a_training_write_to_an_unreachable_server_is_bounded_and_kept_for_the_next(caplog) -> None:
    import time

    from tsdl.tracking.worker import _ClientLogger

    client = MlflowClient("http://127.0.0.1:9")  # nothing listens: every try is refused
    logger = _ClientLogger(client, "0" * 32)
    started = time.monotonic()
    logger.log_epoch(1, {"train_loss": 0.5})  # a warning, not a failed training run
    assert time.monotonic() - started < 30  # MLflow's defaults retry for minutes
    assert logger._pending == [(1, {"train_loss": 0.5})]  # sent with the next write
    assert "MLflow metrics write failed" in caplog.text


@pytest.mark.ray
@pytest.mark.slow(seconds=24)
def test_ray_trains_sigint_handler_does_not_outlive_training(ray_local, tmp_path: Path) -> None:
    """Ray Train's handler (Ctrl-C three times: exit 0) stayed installed after fit() returned."""
    from tests.train.conftest import small_config
    from tsdl import api

    config = small_config(tmp_path, training__max_epochs=1, resources__num_workers=2, tracking__enabled=False)
    api.train(config, progress=False)  # two workers: a real TorchTrainer.fit() in this process
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
