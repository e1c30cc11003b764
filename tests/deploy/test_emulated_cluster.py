"""The rendered RayJob, executed: Helm renders the kind preset with the chart's MLflow server and
object-store storage, and `tests/deploy/emulated_cluster.py` runs its pods (MLflow, Ray head,
Ray worker, KubeRay's submitter) as sandboxed processes against an S3 server on 127.0.0.1.

One scenario, in order (each step needs the previous one's state):
1. the job runs to SUCCEEDED; MLflow holds the study with metrics and artifacts; the bucket holds
   the study state, best config and trial checkpoints;
2. a second RayJob attempt after the first lost its head pod mid-study (what `backoffLimit`
   does) resumes: trials finished before the loss are not run again;
3. with the tracking server down, the job fails in under a minute with the one-line probe error.

`make e2e-local` runs this file and prints one summary line.
"""

from __future__ import annotations

import csv
import io
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import e2e_checks
from tests.deploy.emulated_cluster import (
    ClusterObjects,
    EmulatedCluster,
    RayJobRun,
    SubmitterResult,
    emulation_unavailable,
    free_port,
    python_image,
    wait_http,
)
from tsdl.deploy.chart import CHART_DIR, render_chart

# A few minutes on an idle 2-core machine; TSDL_E2E_TIMEOUT gives a loaded one more time.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(int(os.environ.get("TSDL_E2E_TIMEOUT", "900")))]

RELEASE = "e2e"
NAMESPACE = "default"
BUCKET = "tsdl-e2e"
SECRET = "s3-credentials"
S3_SERVICE = "s3"  # an S3-compatible store inside the cluster, e.g. MinIO's Service
STUDY = RELEASE  # the entrypoint names the study after the RayJob
STAGE1_TRIALS = 2


def e2e_values() -> dict[str, Any]:
    """The kind preset plus what a user adds: object-store storage and data, and a tiny study."""
    values = yaml.safe_load((CHART_DIR / "ci" / "kind-cpu-values.yaml").read_text())
    values["name"] = RELEASE
    values["storage"] = {"uri": f"s3://{BUCKET}/results"}
    values["mlflow"]["credentialsSecret"] = SECRET
    values["config"] = {
        "experiment": {"name": RELEASE},
        "data": {
            "path": f"s3://{BUCKET}/data/smoke.csv",
            "input_chunk_length": 24,
            "output_chunk_length": 6,
        },
        "training": {"max_epochs": 1, "batch_size": 32, "limit_train_batches": 4},
        "resources": {"use_gpu": False, "num_workers": 1, "cpus_per_worker": 1},
        "tune": {
            "stage1_trials": STAGE1_TRIALS,
            "stage2_trials": 0,
            "startup_trials": 1,
            "max_concurrent_trials": 1,
            "asha": {"max_epochs": 1, "grace_period": 1},
        },
    }
    return values


def smoke_csv() -> bytes:
    """Two hourly series of 300 points (the kind script's generator, smaller)."""
    rng = random.Random(0)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["unique_id", "ds", "y"])
    start = datetime(2024, 1, 1)
    for series, level in (("a", 10.0), ("b", 20.0)):
        for t in range(300):
            y = level + 3 * math.sin(2 * math.pi * t / 24) + 0.01 * t + rng.gauss(0, 0.3)
            writer.writerow([series, (start + timedelta(hours=t)).isoformat(), f"{y:.4f}"])
    return out.getvalue().encode()


@dataclass
class World:
    cluster: EmulatedCluster
    rayjob: dict[str, Any]
    s3_endpoint: str
    results: str

    @property
    def tracking_uri(self) -> str:
        return self.cluster.local_url(f"{RELEASE}-mlflow", 5000)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    reason = emulation_unavailable()
    if reason:
        pytest.skip(reason)
    # ray[default] and moto[server] are in the dev extra: a broken dev install fails here.
    import ray.dashboard.modules.job.cli  # noqa: F401  (the submitter pod runs `ray job submit`)
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("S3_IGNORE_SUBDOMAIN_BUCKETNAME", "true")  # path-style for any Host
    creds = {
        "AWS_ACCESS_KEY_ID": "e2e",
        "AWS_SECRET_ACCESS_KEY": "e2e-secret",
        "AWS_REGION": "us-east-1",
    }
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    cluster: EmulatedCluster | None = None
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _upload_dataset(endpoint, creds)
        objects = ClusterObjects(
            NAMESPACE, render_chart(e2e_values(), release=RELEASE, namespace=NAMESPACE)
        )
        # Not pytest's tmp_path: its base directory is pruned by other pytest sessions.
        cluster = EmulatedCluster(objects, Path(tempfile.mkdtemp(prefix="tsdl-emulated-")))
        cluster.services.register(S3_SERVICE, 9000, port)
        in_cluster = f"http://{cluster.services.fqdn(S3_SERVICE)}:9000"
        objects.add_secret(SECRET, {**creds, "AWS_ENDPOINT_URL": in_cluster})
        cluster.start_deployment(f"{RELEASE}-mlflow", python_image())
        saved = {k: os.environ.get(k) for k in [*creds, "AWS_ENDPOINT_URL"]}
        os.environ.update({**creds, "AWS_ENDPOINT_URL": endpoint})  # the test reads the bucket
        try:
            yield World(cluster, objects.get("RayJob", RELEASE), endpoint, f"s3://{BUCKET}/results")
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    finally:
        if cluster is not None:
            cluster.stop_all()
            shutil.rmtree(cluster.workdir, ignore_errors=True)
        server.stop()


def _upload_dataset(endpoint: str, creds: dict[str, str]) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        region_name=creds["AWS_REGION"],
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="data/smoke.csv", Body=smoke_csv())


def _start_attempt(world: World, attempt: int) -> RayJobRun:
    """A RayCluster for the RayJob (what KubeRay creates per attempt), once its nodes are up."""
    run = RayJobRun(world.cluster, world.rayjob, attempt=attempt)
    run.start()
    wait_http(f"{world.tracking_uri}/health", 300)  # the MLflow pod starts meanwhile
    _wait_tracking_api(world.tracking_uri)
    run.wait_nodes(2, timeout=600)
    return run


def _wait_tracking_api(uri: str, timeout: float = 180) -> None:
    """Until the MLflow API answers, not just /health: its first call loads the store, which on
    a loaded machine outlasts the driver's quick probe (that probe is what the last test checks)."""
    from mlflow import MlflowClient

    deadline = time.monotonic() + timeout
    while True:
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _describe(result: SubmitterResult) -> str:
    return f"job {result.status} after {result.seconds:.0f}s:\n{result.log[-4000:]}"


def test_a_head_pod_loss_mid_study_resumes_on_the_next_attempt_and_the_job_succeeds(
    world: World,
) -> None:
    first = _start_attempt(world, 0)
    submitter = first.start_submitter("e2e-a0")
    deadline = time.monotonic() + 600
    done: dict[str, bytes] = {}
    while time.monotonic() < deadline and not done and submitter.alive():
        time.sleep(5)
        done = e2e_checks.finished_trials(world.results, STUDY)
    assert done, f"no trial finished in the first attempt:\n{submitter.output()[-4000:]}"
    # The head pod dies (node lost): the cluster and its submitter go; KubeRay starts attempt 2.
    first.stop()
    submitter.stop()

    second = _start_attempt(world, 1)
    result = second.submit("e2e-a1", timeout=900)
    assert result.succeeded, _describe(result)
    after = e2e_checks.finished_trials(world.results, STUDY)
    assert len(after) == STAGE1_TRIALS, f"{len(after)} trials finished, want {STAGE1_TRIALS}"
    for trial_id, before in done.items():
        assert after.get(trial_id) == before, f"trial {trial_id} ran again after the resume"

    summary = e2e_checks.check_mlflow(world.tracking_uri, RELEASE, STUDY)
    assert summary.metrics and summary.artifacts
    assert e2e_checks.check_storage(world.results, STUDY) > 0
    world.cluster.last_run = second  # type: ignore[attr-defined]


def test_the_job_fails_within_a_minute_when_the_tracking_server_is_down(world: World) -> None:
    run: RayJobRun | None = getattr(world.cluster, "last_run", None)
    if run is None:
        run = _start_attempt(world, 2)
    mlflow = next(p for p in world.cluster.pods if p.name.startswith(f"{RELEASE}-mlflow"))
    mlflow.stop()
    result = run.submit("e2e-down", timeout=180)
    assert result.status == "FAILED", _describe(result)
    assert result.seconds < 60, _describe(result)
    lines = [
        line for line in result.log.splitlines() if "MLflow" in line and "error" in line.lower()
    ]
    assert lines, _describe(result)
    run.stop()
