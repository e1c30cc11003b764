"""Joining Ray: a dead or silent address fails in bounded time with one line, workers that cannot
be placed are refused here or waited for with a limit, and a Ray the caller joined is the cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import config_with
from tsdl.errors import ConfigError, TrainingError
from tsdl.ray_connection import (
    AUTOSCALER_CAPACITY_ENV,
    check_address,
    describe,
    groups_that_fit,
    reserve_worker_group,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A 127.0.0.1 port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_silent_address_fails_within_the_timeout(silent_port: int, scheme: str) -> None:
    start = time.monotonic()
    with pytest.raises(TrainingError, match=r"no answer within 1 s") as info:
        check_address(f"{scheme}127.0.0.1:{silent_port}", timeout_s=1.0)
    assert time.monotonic() - start < 5
    assert "\n" not in str(info.value)


def test_a_refused_address_fails_at_once() -> None:
    start = time.monotonic()
    with pytest.raises(TrainingError, match="unreachable"):
        check_address(f"127.0.0.1:{_free_port()}", timeout_s=30.0)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("address", ["no-port", "host:http", "host:0", "host:70000", "http://h:8265/x", ":6379"])
def test_a_malformed_address_is_a_config_error(address: str) -> None:
    with pytest.raises(ConfigError, match="is not auto, host:port or ray://host:port"):
        check_address(address, timeout_s=1.0)


def test_fit_counts_whole_groups() -> None:
    assert groups_that_fit({"CPU": 2}, {"CPU": 5}) == 2
    assert groups_that_fit({"CPU": 1, "GPU": 1}, {"CPU": 8}) == 0
    assert groups_that_fit({"CPU": 0.5}, {"CPU": 1.5}) == 3
    assert describe({"CPU": 2, "GPU": 0}, ["GPU"]) == "GPU=0"


def test_workers_this_machine_cannot_hold_are_refused_at_once() -> None:
    """No Ray is started for the answer (ray.cluster_resources() when one already runs here)."""
    start = time.monotonic()
    with pytest.raises(TrainingError, match=r"needs CPU=4096 .* but this machine has CPU="):
        reserve_worker_group(config_with({}, resources__num_workers=4096))
    with pytest.raises(TrainingError, match=r"GPU=64 .*drop --gpus"):
        reserve_worker_group(config_with({}, resources__use_gpu=True, resources__gpus_per_worker=64))
    assert time.monotonic() - start < 10


def test_a_group_beyond_the_autoscalers_bound_is_refused(monkeypatch: pytest.MonkeyPatch, ray_local) -> None:
    monkeypatch.setattr("tsdl.ray_connection.connected_cluster", lambda: True)
    monkeypatch.setenv(AUTOSCALER_CAPACITY_ENV, '{"CPU": 3}')
    with pytest.raises(TrainingError, match="can grow to CPU=3 at most"):
        reserve_worker_group(config_with({}, resources__num_workers=4))


def test_a_cluster_that_does_not_grow_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch, ray_local, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real pending placement group on the session's 2-CPU Ray, as if it were a cluster."""
    import ray

    monkeypatch.setattr("tsdl.ray_connection.connected_cluster", lambda: True)
    config = config_with({}, resources__num_workers=3, resources__placement_timeout_s=2)
    start = time.monotonic()
    with pytest.raises(TrainingError, match=r"did not grow to fit the run \(CPU=3; it has CPU=2\) within 2 s"):
        reserve_worker_group(config)
    assert 2 <= time.monotonic() - start < 15
    assert "waiting up to 2 s for the Ray cluster to add nodes" in capsys.readouterr().out
    from ray.util import placement_group_table

    assert all(pg["state"] == "REMOVED" for pg in placement_group_table().values()), "the asking group was left"
    assert ray.available_resources().get("CPU") == 2


def test_sigterm_while_waiting_for_nodes_is_the_sigterm_line(
    monkeypatch: pytest.MonkeyPatch, ray_local, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by issue 23: `interrupted` instead of the SIGTERM line (Ray turns what the handler
    raised into a plain KeyboardInterrupt). The CLI runs in this process, on the session's Ray
    playing a cluster that has to grow; SIGTERM comes once the placement group is pending."""
    import importlib

    from tsdl.cli.main import main

    pg_module = importlib.import_module("ray.util.placement_group")  # ray.util's function shadows it

    asked = threading.Event()
    real = pg_module.placement_group

    def placement_group(*args, **kwargs):
        group = real(*args, **kwargs)
        asked.set()
        return group

    def terminate() -> None:
        if asked.wait(120):
            time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(pg_module, "placement_group", placement_group)
    monkeypatch.setattr("tsdl.ray_connection.connected_cluster", lambda: True)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(
        "data: {input_chunk_length: 24, output_chunk_length: 6}\ntracking: {enabled: false}\n"
        "resources: {num_workers: 3, placement_timeout_s: 300}\n"
    )
    threading.Thread(target=terminate, daemon=True).start()
    start = time.monotonic()
    code = main(["train", "-c", "c.yaml"])
    captured = capsys.readouterr()
    assert asked.is_set() and time.monotonic() - start < 60, captured
    assert code == 143, captured
    assert "waiting up to 300 s" in captured.out
    assert captured.err.strip().splitlines() == [
        "terminated (SIGTERM): finished epochs and trials are kept (continue with --resume)"
    ]


def _gcs_address() -> str:
    import ray

    return ray._private.worker.global_worker.node.gcs_address


def test_a_live_ray_head_passes_the_address_check(ray_local) -> None:
    """The probe must never refuse a real Ray: the session's head answers it."""
    check_address(_gcs_address(), timeout_s=10.0)


def test_ray_started_here_is_not_a_cluster(ray_local) -> None:
    from tsdl.api import _in_driver
    from tsdl.ray_connection import connected_cluster

    assert not connected_cluster()
    assert _in_driver(config_with({}), None)


_JOINED = textwrap.dedent(
    """
    import sys, ray
    ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
    from tsdl.api import _in_driver
    from tsdl.config import TsdlConfig
    from tsdl.ray_connection import connected_cluster
    print(connected_cluster(), _in_driver(TsdlConfig(), None))
    """
)


def test_a_ray_the_caller_joined_is_the_cluster(ray_local) -> None:
    """Issue 22 bug 6: after `ray.init(address=...)` in a notebook, api.train trained in the
    driver without a word. A second driver joins the session's Ray, as a notebook joins a cluster."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-c", _JOINED, _gcs_address()], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "False"], proc.stdout + proc.stderr[-3000:]
