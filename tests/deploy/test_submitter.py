"""tsdl.deploy.submitter: the exit code KubeRay sees decides whether a lost head is retried.

The Ray head is a double here (its job table and log stream); the HTTP health checks are real
requests to a server on 127.0.0.1. e2e scenario 3 runs the command on the real operator.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace

import pytest
from ray.job_submission import JobStatus

from tsdl.deploy import submitter
from tsdl.deploy.rayjob import SUBMITTER_COMMAND

ENTRYPOINT = "tsdl tune -c /etc/tsdl/config.yaml --study-name s --resume-if-exists"


class Head:
    """A Ray head's job table and log stream: `ends` is what the head reports after the stream
    (a status, None for a job it does not know, or an exception for an unreachable head)."""

    def __init__(
        self,
        known: str | None = None,
        ends: object = "SUCCEEDED",
        breaks: bool = False,
        hangs: bool = False,
    ):
        self.status: str | None = known
        self.ends = ends
        self.breaks = breaks
        self.hangs = hangs
        self.submitted: list[tuple[str, str]] = []
        self.streamed = False

    def get_job_info(self, job_id: str) -> SimpleNamespace:
        status = self.ends if self.streamed else self.status
        if isinstance(status, Exception):
            raise status
        if status is None:
            raise RuntimeError(f"Request failed with status code 404: Job {job_id} does not exist.")
        return SimpleNamespace(status=JobStatus(status))  # what the SDK returns

    def submit_job(self, *, entrypoint: str, submission_id: str) -> str:
        self.submitted.append((submission_id, entrypoint))
        self.status = "PENDING"
        return submission_id

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        yield "epoch 1 val_loss 0.5\n"
        self.streamed = True
        if self.breaks:
            raise RuntimeError("WebSocket connection closed unexpectedly with close code 1006")
        if self.hangs:  # a connection whose other end vanished: no close frame ever comes
            await asyncio.sleep(3600)


@pytest.fixture(scope="module")
def healthy() -> Iterator[str]:
    """An HTTP server on 127.0.0.1: a ready dashboard (200), and `/<code>` answers that code."""

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            code = int(self.path[1:]) if self.path[1:].isdigit() else 200  # GET /503 answers 503
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"success" if code == 200 else b"no")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _run(head: Head, address: str) -> int:
    return submitter.run(ENTRYPOINT, address, "job-1", lambda _: head)


def test_a_new_job_is_submitted_under_the_rayjobs_id_and_followed_to_success(
    healthy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = Head()
    assert _run(head, healthy) == 0
    assert head.submitted == [("job-1", ENTRYPOINT)]
    out = capsys.readouterr().out
    assert "epoch 1 val_loss 0.5" in out
    assert out.rstrip().endswith("submitter: job job-1 succeeded")
    assert "waiting" not in out  # the dashboard was ready: no waiting line


def test_a_retried_pod_attaches_to_the_job_the_head_already_runs(
    healthy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = Head(known="RUNNING")
    assert _run(head, healthy) == 0
    assert head.submitted == []
    assert "already on this head (RUNNING)" in capsys.readouterr().out


@pytest.mark.parametrize("status", ["FAILED", "STOPPED"])
def test_a_finished_job_exits_zero_whatever_its_outcome(healthy: str, status: str) -> None:
    """KubeRay reads FAILED/STOPPED from the head itself; a non-zero exit would only make the
    Job re-follow a finished job until its retries run out."""
    assert _run(Head(ends=status), healthy) == 0


@pytest.mark.parametrize(
    "head",
    [
        Head(
            ends="RUNNING"
        ),  # a head shutting down: the stream closed cleanly, the job did not end
        Head(ends=None),  # the recreated head answered: it has never heard of the job
        Head(ends=ConnectionError("refused")),  # the head is gone
        Head(ends="RUNNING", breaks=True),  # the stream broke mid-job
    ],
    ids=["clean-close-running", "unknown-to-new-head", "unreachable", "broken-stream"],
)
def test_a_stream_that_ends_before_the_job_makes_the_job_retry(
    head: Head, healthy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(head, healthy) == submitter.RETRY_EXIT == 1
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith("submitter: job job-1 has not finished")
    assert "retries on the recreated head" in last


@pytest.mark.parametrize(
    "ends", [ConnectionError("no route to host"), None], ids=["head-silent", "job-unknown"]
)
def test_a_stream_that_never_closes_is_given_up_when_the_head_stops_answering_for_the_job(
    ends: object, healthy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node loss leaves the log connection half-open (no close, no reset): the submitter
    must not wait for TCP keepalive while the recreated head waits for the job."""
    monkeypatch.setattr(submitter, "CHECK_EVERY_S", 0.05)
    start = time.monotonic()
    assert _run(Head(ends=ends, hangs=True), healthy) == 1
    assert time.monotonic() - start < 5


def test_the_dashboard_is_ready_only_when_its_gcs_check_says_200(healthy: str) -> None:
    assert submitter.http_ok(f"http://{healthy}/200")()
    assert not submitter.http_ok(f"http://{healthy}/503")()  # the GCS is not up yet
    assert not submitter.http_ok("http://127.0.0.1:9/")()  # refused


def test_a_refused_submission_exits_one_with_one_line(
    healthy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = Head(known=None)
    head.submit_job = lambda **_: (_ for _ in ()).throw(RuntimeError("status code 500: boom"))  # type: ignore[method-assign]
    assert _run(head, healthy) == 1
    assert "could not submit job job-1" in capsys.readouterr().out


def test_without_kuberays_variables_it_says_which_are_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RAY_DASHBOARD_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_JOB_SUBMISSION_ID", raising=False)
    assert submitter.main(["--entrypoint", "true"]) == 2
    assert capsys.readouterr().out.strip() == (
        "submitter: RAY_DASHBOARD_ADDRESS and RAY_JOB_SUBMISSION_ID not set "
        "(KubeRay sets them in the submitter pod); exiting 2"
    )


def test_the_rendered_command_is_this_module() -> None:
    assert SUBMITTER_COMMAND[-1] == submitter.__name__


def test_waiting_for_the_dashboard_says_so_once_then_every_30_s(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = iter(range(10, 1000, 10))  # each sleep of the submitter is 10 s of monotonic time
    now = [0]
    monkeypatch.setattr(submitter.time, "sleep", lambda _: now.__setitem__(0, next(clock)))
    monkeypatch.setattr(submitter.time, "monotonic", lambda: now[0])
    answers = iter([False] * 7 + [True])
    submitter.wait_until(lambda: next(answers), "the Ray dashboard")
    assert capsys.readouterr().out.splitlines() == [
        "submitter: waiting for the Ray dashboard",
        "submitter: still waiting for the Ray dashboard (30s)",
        "submitter: still waiting for the Ray dashboard (60s)",
    ]
