"""RayJobClient and `tsdl submit|status|logs|cancel` against a TEST DOUBLE of the Kubernetes API.

The double (tests/deploy/_k8s_double.py) is a small threaded HTTP server on 127.0.0.1 that
implements the `ray.io/v1` rayjobs resource, ConfigMaps, pods and pods/log; it is NOT a Kubernetes
API server and runs no operator. The client under test is the real `kubernetes.client.ApiClient`
pointed at it, so requests, paths, serialization and ApiException handling are the real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.deploy._k8s_double import KubeApiDouble, serve
from tsdl.cli.main import main
from tsdl.config import parse_config
from tsdl.deploy import RayJobClient, RayJobStatus, build_manifests
from tsdl.deploy import client as client_module
from tsdl.errors import DeployError

RUNNING = {
    "jobDeploymentStatus": "Running",
    "jobStatus": "RUNNING",
    "rayClusterName": "etth1-tune-abc",
}
SUCCEEDED = {
    "jobDeploymentStatus": "Complete",
    "jobStatus": "SUCCEEDED",
    "rayClusterName": "etth1-tune-abc",
}
FAILED = {
    "jobDeploymentStatus": "Failed",
    "jobStatus": "FAILED",
    "reason": "AppFailed",
    "message": "Job entrypoint command failed with exit code 2",
}


@pytest.fixture
def api() -> Iterator[tuple[KubeApiDouble, k8s.ApiClient]]:
    """The double, with the prerequisites of namespace `ml` in place (as `helm install tsdl
    helm/tsdl --set job.enabled=false` leaves them)."""
    with serve() as (double, url):
        double.add_prerequisites("ml")
        configuration = k8s.Configuration()
        configuration.host = url
        api_client = k8s.ApiClient(configuration)
        try:
            yield double, api_client
        finally:
            api_client.close()


def _manifests(name: str = "etth1-tune", namespace: str = "ml") -> list[dict[str, Any]]:
    config = parse_config(
        {
            "experiment": {"name": "ETTh1"},
            "resources": {"use_gpu": True},
            "deploy": {"namespace": namespace},
        }
    )
    manifests = build_manifests(config)
    assert [m["kind"] for m in manifests] == ["ConfigMap", "NetworkPolicy", "RayJob"]
    assert manifests[-1]["metadata"]["name"] == name
    return manifests


def _job(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return manifests[-1]


def test_submit_creates_configmap_then_rayjob(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    created = jobs.submit(_manifests())
    assert created == RayJobStatus("etth1-tune", "ml", "New", "PENDING")
    assert [r for r in double.requests if r[0] == "POST"] == [
        ("POST", "/api/v1/namespaces/ml/configmaps"),
        ("POST", "/apis/networking.k8s.io/v1/namespaces/ml/networkpolicies"),
        ("POST", "/apis/ray.io/v1/namespaces/ml/rayjobs"),
    ]
    stored = double.objects[("rayjobs", "ml", "etth1-tune")]
    assert stored["spec"] == _job(_manifests())["spec"]
    assert ("networkpolicies", "ml", "etth1-tune-ray") in double.objects
    assert [s.name for s in jobs.list()] == ["etth1-tune"]


def test_resubmitting_a_live_job_is_a_clear_conflict(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    _, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    with pytest.raises(DeployError) as caught:
        jobs.submit(_manifests())
    assert "ml/etth1-tune already exists" in caught.value.message
    assert "tsdl cancel etth1-tune" in caught.value.hint


def test_rayjob_conflict_after_configmap_is_http_409(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    double, api_client = api
    manifests = _manifests()
    double.objects[("rayjobs", "ml", "etth1-tune")] = _job(manifests)
    jobs = RayJobClient(api_client, namespace="ml")
    with pytest.raises(DeployError) as caught:
        jobs.submit([_job(manifests)])
    assert caught.value.message.startswith("creating RayJob ml/etth1-tune: HTTP 409:")
    assert "already exists" in caught.value.message


def test_a_leftover_configmap_is_replaced(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    stale = _manifests()[0] | {"data": {"config.yaml": "old: true\n"}}
    double.objects[("configmaps", "ml", "etth1-tune-config")] = stale
    RayJobClient(api_client, namespace="ml").submit(_manifests())
    assert ("PUT", "/api/v1/namespaces/ml/configmaps/etth1-tune-config") in double.requests
    assert (
        double.objects[("configmaps", "ml", "etth1-tune-config")]["data"] == _manifests()[0]["data"]
    )


def test_invalid_object_surfaces_the_server_message(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    _, api_client = api
    job = _job(_manifests())
    job["metadata"]["name"] = "Bad_Name"
    with pytest.raises(DeployError) as caught:
        RayJobClient(api_client, namespace="ml").submit([job])
    assert "HTTP 422" in caught.value.message and "metadata.name" in caught.value.message
    assert "rejected" in caught.value.hint


def test_unknown_job_is_a_404_naming_it(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    _, api_client = api
    with pytest.raises(DeployError) as caught:
        RayJobClient(api_client, namespace="ml").status("nope")
    assert caught.value.message == 'reading RayJob ml/nope: HTTP 404: rayjobs "nope" not found'


def test_wait_follows_status_changes_until_success(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    initializing = {"jobDeploymentStatus": "Initializing", "jobStatus": ""}
    double.script_status(
        "ml", "etth1-tune", [initializing, initializing, RUNNING, RUNNING, SUCCEEDED]
    )
    seen: list[RayJobStatus] = []
    final = jobs.wait("etth1-tune", poll_s=0.001, on_change=seen.append)
    assert final.succeeded
    assert [(s.deployment_status, s.job_status) for s in seen] == [
        ("Initializing", "PENDING"),
        ("Running", "RUNNING"),
        ("Complete", "SUCCEEDED"),
    ]


def test_wait_reports_kuberay_statuses_of_a_failed_job(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    double.script_status("ml", "etth1-tune", [RUNNING, FAILED])
    with pytest.raises(DeployError) as caught:
        jobs.wait("etth1-tune", poll_s=0.001)
    message = caught.value.message
    assert (
        "deployment=Failed" in message and "job=FAILED" in message and "reason=AppFailed" in message
    )
    assert "exit code 2" in message
    assert "tsdl logs etth1-tune -n ml" in caught.value.hint


def test_wait_times_out_with_the_last_status(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    double.script_status("ml", "etth1-tune", [RUNNING])
    with pytest.raises(
        DeployError, match=r"still unfinished after 0.05s: etth1-tune: deployment=Running"
    ):
        jobs.wait("etth1-tune", timeout_s=0.05, poll_s=0.01)


def test_logs_read_the_newest_submitter_pod(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    labels = {"batch.kubernetes.io/job-name": "etth1-tune"}
    double.add_pod("ml", "etth1-tune-old", labels, "attempt 1 failed\n", "2026-01-01T00:00:00Z")
    double.add_pod(
        "ml",
        "etth1-tune-new",
        labels,
        "trial 1 val_loss=0.5\ntrial 2 val_loss=0.4\n",
        "2026-01-01T01:00:00Z",
    )
    double.add_pod(
        "ml", "other", {"batch.kubernetes.io/job-name": "other"}, "no\n", "2026-01-02T00:00:00Z"
    )
    assert jobs.logs("etth1-tune") == "trial 1 val_loss=0.5\ntrial 2 val_loss=0.4\n"
    assert jobs.logs("etth1-tune", tail_lines=1) == "trial 2 val_loss=0.4\n"


def test_logs_before_the_submitter_starts_say_why(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    double.script_status("ml", "etth1-tune", [{"jobDeploymentStatus": "Initializing"}])
    with pytest.raises(DeployError, match="no submitter pod .* deployment=Initializing"):
        jobs.logs("etth1-tune")


def test_cancel_deletes_job_and_config(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    before = set(double.objects)
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    jobs.cancel("etth1-tune")
    assert set(double.objects) == before  # the prerequisites stay
    with pytest.raises(DeployError, match="deleting RayJob ml/etth1-tune: HTTP 404"):
        jobs.cancel("etth1-tune")


def test_cancel_leaves_objects_helm_owns(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    """A job `helm install` created: cancel deletes the RayJob, not Helm's ConfigMap/policy."""
    double, api_client = api
    helm_owned = []
    for resource, manifest in zip(
        ("configmaps", "networkpolicies", "rayjobs"), _manifests(), strict=True
    ):
        manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "Helm"
        double.add(resource, manifest, "ml")
        helm_owned.append((resource, "ml", manifest["metadata"]["name"]))
    RayJobClient(api_client, namespace="ml").cancel("etth1-tune")
    assert [key for key in helm_owned if key in double.objects] == helm_owned[:2]
    assert not [r for r in double.requests if r[0] == "DELETE" and "rayjobs" not in r[1]]


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("serviceaccounts", "ServiceAccount ml/tsdl does not exist"),
        ("persistentvolumeclaims", "PersistentVolumeClaim ml/tsdl-results does not exist"),
    ],
)
def test_submit_without_prerequisites_names_the_command(
    api: tuple[KubeApiDouble, k8s.ApiClient], missing: str, expected: str
) -> None:
    double, api_client = api
    del double.objects[(missing, "ml", "tsdl" if missing == "serviceaccounts" else "tsdl-results")]
    with pytest.raises(DeployError) as caught:
        RayJobClient(api_client, namespace="ml").submit(_manifests())
    assert caught.value.message.startswith(expected)
    assert "helm install tsdl helm/tsdl -n ml --set job.enabled=false" in caught.value.hint
    assert "k8s/prerequisites.yaml" in caught.value.hint
    assert not [r for r in double.requests if r[0] == "POST"]  # nothing half-created


def test_submit_checks_a_named_claim_and_account(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    double, api_client = api
    config = parse_config(
        {
            "experiment": {"name": "ETTh1"},
            "resources": {"use_gpu": True},
            "deploy": {
                "namespace": "ml",
                "service_account": "team-a",
                "storage": {"claim_name": "team-a-results"},
            },
        }
    )
    jobs = RayJobClient(api_client, namespace="ml")
    with pytest.raises(DeployError, match="ServiceAccount ml/team-a does not exist") as caught:
        jobs.submit(build_manifests(config))
    assert "deploy.service_account" in caught.value.hint
    double.add_prerequisites("ml", release="team-a")
    assert jobs.submit(build_manifests(config)).name == "etth1-tune"


def test_forbidden_names_the_object_and_the_role_that_grants_it(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    double, api_client = api
    double.forbidden.add(("POST", "configmaps"))
    with pytest.raises(DeployError) as caught:
        RayJobClient(api_client, namespace="ml").submit(_manifests())
    assert caught.value.message.startswith("creating ConfigMap ml/etth1-tune-config: HTTP 403")
    assert "-submitter` Role" in caught.value.hint and "rbac.submitters" in caught.value.hint


def test_unreadable_prerequisites_do_not_block_a_submit(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    """A user without `get` on ServiceAccounts/claims (no submitter Role) can still submit."""
    double, api_client = api
    double.forbidden |= {("GET", "serviceaccounts"), ("GET", "persistentvolumeclaims")}
    assert RayJobClient(api_client, namespace="ml").submit(_manifests()).name == "etth1-tune"


def test_object_store_jobs_need_no_claim(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    del double.objects[("persistentvolumeclaims", "ml", "tsdl-results")]
    config = parse_config(
        {
            "resources": {"use_gpu": True},
            "deploy": {"namespace": "ml", "storage": {"uri": "s3://bucket/tsdl"}},
        }
    )
    assert RayJobClient(api_client, namespace="ml").submit(build_manifests(config)).name


def test_unreachable_api_is_one_line() -> None:
    configuration = k8s.Configuration()
    configuration.host = "http://127.0.0.1:9"  # discard port: nothing listens
    configuration.retries = False
    with k8s.ApiClient(configuration) as api_client, pytest.raises(DeployError) as caught:
        RayJobClient(api_client, namespace="ml").status("x")
    assert "cannot reach the Kubernetes API" in caught.value.message


def test_cli_submit_wait_status_logs_cancel(
    api: tuple[KubeApiDouble, k8s.ApiClient],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    double, api_client = api
    monkeypatch.setattr(client_module, "_default_api_client", lambda: api_client)
    config = tmp_path / "config.yaml"
    config.write_text("experiment:\n  name: ETTh1\nresources:\n  use_gpu: true\n")
    double.script_status("ml", "etth1-tune", [RUNNING, SUCCEEDED])
    assert (
        main(
            # Two worker pods need shared storage: name the (ReadWriteMany) claim explicitly.
            ["submit", "-c", str(config), "-n", "ml", "--workers", "2", "--storage", "tsdl-results"]
            + ["--wait", "--poll", "0.01"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "created RayJob ml/etth1-tune (tune)" in out and "deployment=Complete job=SUCCEEDED" in out
    )
    job = double.objects[("rayjobs", "ml", "etth1-tune")]
    assert job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 2

    assert main(["status", "-n", "ml"]) == 0
    assert "etth1-tune: deployment=Complete" in capsys.readouterr().out
    double.add_pod(
        "ml",
        "etth1-tune-x",
        {"job-name": "etth1-tune"},
        "best val_loss 0.31\n",
        "2026-01-01T00:00:00Z",
    )
    assert main(["logs", "etth1-tune", "-n", "ml"]) == 0
    assert capsys.readouterr().out == "best val_loss 0.31\n"
    assert main(["cancel", "etth1-tune", "-n", "ml"]) == 0
    assert main(["status", "etth1-tune", "-n", "ml"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("error: reading RayJob ml/etth1-tune: HTTP 404") and "Traceback" not in err
    )
