"""The RayJob's submitter pod: KubeRay's `ray job submit` + `ray job logs --follow`, made safe
against a lost head.

KubeRay (K8sJobMode) runs the submitter as a Kubernetes Job and takes the submission for done
when its pod exits 0. Its default command exits 0 whenever `ray job logs --follow` ends cleanly,
and a head pod that shuts down on deletion ends the log stream cleanly (WebSocket close 1000)
while it still answers the status request that follows. The operator then asks the recreated
head, which has never heard of the job, and fails the RayJob ("Submitter completed but Ray job
not found in RayCluster"): the study is lost to a race, not to the head loss (e2e scenario 3).

This command exits 0 only once the head reports the job in a terminal state (KubeRay reads which
one itself). Any other end of the stream exits 1, so the submitter Job starts a new pod, which
finds the recreated head without the job and submits the same submission id again; the
entrypoint resumes the study or run from shared storage.

KubeRay sets `RAY_DASHBOARD_ADDRESS` and `RAY_JOB_SUBMISSION_ID` in the container; the chart and
`tsdl.deploy.rayjob` pass the entrypoint:
`python -m tsdl.deploy.submitter --entrypoint "tsdl tune -c /etc/tsdl/config.yaml ..."`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, Protocol

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
RETRY_EXIT = 1  # the submitter Job's backoffLimit turns this into a new pod
REPORT_EVERY_S = 30.0
CHECK_EVERY_S = 20.0  # while following: is the head still there and does it know the job?
MISSED_CHECKS = 3


class JobClient(Protocol):
    """The part of `ray.job_submission.JobSubmissionClient` the submitter uses."""

    def get_job_info(self, job_id: str) -> Any: ...

    def submit_job(self, *, entrypoint: str, submission_id: str) -> str: ...

    def tail_job_logs(self, job_id: str) -> Any: ...


def say(message: str) -> None:
    print(f"submitter: {message}", flush=True)


def wait_until(ready: Callable[[], bool], what: str) -> None:
    """Poll `ready` every 2 s; one line when the wait starts and every 30 s after. No limit of
    its own: the RayJob's deadlines bound it, as they bound KubeRay's own wait loop."""
    start = last = time.monotonic()
    if ready():
        return
    say(f"waiting for {what}")
    while not ready():
        time.sleep(2)
        if time.monotonic() - last >= REPORT_EVERY_S:
            last = time.monotonic()
            say(f"still waiting for {what} ({time.monotonic() - start:.0f}s)")


def http_ok(url: str) -> Callable[[], bool]:
    """A probe: True when `url` answers 2xx (the dashboard's GCS check says 503 until then)."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return 200 <= response.status < 300
        except (OSError, ValueError):  # URLError, HTTPError, timeouts, refused connections
            return False

    return probe


def job_status(client: JobClient, job_id: str) -> str | None:
    """The job's status on the head the client talks to; None when that head does not know it.
    Connection errors propagate: the caller decides what an unreachable head means."""
    try:
        return str(client.get_job_info(job_id).status)
    except RuntimeError as err:  # the SDK's "Request failed with status code 404: ..."
        if "status code 404" in str(err):
            return None
        raise


def submit_or_attach(client: JobClient, job_id: str, entrypoint: str) -> None:
    """Submit under `job_id` unless this head already runs it (a retried submitter pod)."""
    status = job_status(client, job_id)
    if status is None:
        client.submit_job(entrypoint=entrypoint, submission_id=job_id)
        say(f"submitted job {job_id}")
    else:
        say(f"job {job_id} is already on this head ({status}); following its log")


async def _print_log(client: JobClient, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        print(lines, end="", flush=True)


async def _stream(client: JobClient, job_id: str) -> None:
    """The log stream, watched: a head whose node vanished sends no close, and the stream would
    wait for TCP keepalive (hours) while the recreated head never gets the job. So the head is
    asked for the job every CHECK_EVERY_S; MISSED_CHECKS failed answers in a row, or a head that
    no longer knows the job, end the stream."""
    tail = asyncio.ensure_future(_print_log(client, job_id))
    missed = 0
    while True:
        done, _ = await asyncio.wait({tail}, timeout=CHECK_EVERY_S)
        if done:
            return tail.result()  # re-raises what broke the stream
        try:
            known = await asyncio.to_thread(job_status, client, job_id) is not None
            missed = 0
        except (OSError, RuntimeError):
            known, missed = True, missed + 1
        if not known or missed >= MISSED_CHECKS:
            tail.cancel()
            why = "no longer knows the job" if not known else f"missed {missed} checks"
            raise ConnectionError(f"the head {why}")


def follow(client: JobClient, job_id: str) -> int:
    """Print the driver's log until the stream ends, then the exit code KubeRay should see."""
    try:
        asyncio.run(_stream(client, job_id))
    except Exception as err:  # noqa: BLE001 - a broken stream of any kind: the head may be gone
        say(f"log stream of job {job_id} broke ({type(err).__name__}: {err})")
    try:
        status = job_status(client, job_id)
    except (OSError, RuntimeError) as err:
        status = f"head unreachable: {type(err).__name__}"
    if status in TERMINAL:
        say(f"job {job_id} {status.lower()}")
        return 0
    say(
        f"job {job_id} has not finished (status {status or 'unknown to this head'}): the Ray head "
        "went away; exiting 1 so the submitter Job retries on the recreated head"
    )
    return RETRY_EXIT


def run(entrypoint: str, address: str, job_id: str, connect: Callable[[str], JobClient]) -> int:
    """Wait for the dashboard, submit or attach, follow; the pod's exit code."""
    base = address if "://" in address else f"http://{address}"
    wait_until(http_ok(f"{base}/api/gcs_healthz"), f"the Ray dashboard at {base}")
    try:
        client = connect(base)
        submit_or_attach(client, job_id, entrypoint)
    except (OSError, RuntimeError) as err:
        say(f"could not submit job {job_id} to {base} ({type(err).__name__}: {err}); exiting 1")
        return RETRY_EXIT
    return follow(client, job_id)


def _connect(address: str) -> JobClient:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address)  # type: ignore[return-value]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tsdl.deploy.submitter",
        description="Submit the RayJob's entrypoint (or attach to it) and follow it to the end; "
        "exit 0 only when the job finished on the head. Reads RAY_DASHBOARD_ADDRESS and "
        "RAY_JOB_SUBMISSION_ID, which KubeRay sets in the submitter pod.",
    )
    parser.add_argument("--entrypoint", required=True, help="the driver command (a shell line)")
    args = parser.parse_args(argv)
    missing = [
        v for v in ("RAY_DASHBOARD_ADDRESS", "RAY_JOB_SUBMISSION_ID") if not os.environ.get(v)
    ]
    if missing:
        say(f"{' and '.join(missing)} not set (KubeRay sets them in the submitter pod); exiting 2")
        return 2
    return run(
        args.entrypoint,
        os.environ["RAY_DASHBOARD_ADDRESS"],
        os.environ["RAY_JOB_SUBMISSION_ID"],
        _connect,
    )


if __name__ == "__main__":
    sys.exit(main())
