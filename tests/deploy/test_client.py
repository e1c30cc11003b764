"""RayJobClient and `tsdl submit|status|logs|cancel` against a TEST DOUBLE of the Kubernetes API.

The double (tests/deploy/_k8s_double.py) is a small threaded HTTP server on 127.0.0.1 that
implements the `ray.io/v1` rayjobs resource, ConfigMaps, pods and pods/log; it is NOT a Kubernetes
API server and runs no operator. The client under test is the real `kubernetes.client.ApiClient`
pointed at it, so requests, paths, serialization and ApiException handling are the real ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.deploy._k8s_double import KubeApiDouble, serve
from tsdl.cli.main import main
from tsdl.config import parse_config
from tsdl.deploy import RayJobClient, RayJobStatus, build_manifests
from tsdl.deploy import client as client_module
from tsdl.deploy._calls import transport_retries
from tsdl.deploy.client import RetryPolicy
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
        configuration.retries = transport_retries()  # as tsdl's own client has them
        api_client = k8s.ApiClient(configuration)
        try:
            yield double, api_client
        finally:
            api_client.close()


class FakeTime:
    """A clock that only `sleep` moves, so retry tests do not wait; `on_sleep` runs after each
    sleep (e.g. to bring the API server back)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.notices: list[str] = []
        self.on_sleep: Any = None

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.sleeps))

    def policy(self, **kwargs: Any) -> RetryPolicy:
        """The default policy's numbers, with this clock and no randomness (the longest waits)."""
        return RetryPolicy(sleep=self.sleep, clock=lambda: self.now, jitter=lambda: 1.0, **kwargs)

    def client(self, api_client: k8s.ApiClient, **kwargs: Any) -> RayJobClient:
        return RayJobClient(
            api_client, namespace="ml", retry=self.policy(**kwargs), notify=self.notices.append
        )


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
    assert (
        "helm install tsdl helm/tsdl -n ml --create-namespace --set job.enabled=false"
        in caught.value.hint
    )
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


def test_wait_rides_out_an_api_server_returning_503(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    """Two 503s mid-wait (an API server restarting behind its load balancer) cost two backoffs,
    not the job: the wait goes on to the job's success."""
    double, api_client = api
    fake = FakeTime()
    jobs = fake.client(api_client)
    jobs.submit(_manifests())
    double.script_status("ml", "etth1-tune", [RUNNING, RUNNING, SUCCEEDED])
    double.fail("GET", "rayjobs", 503, 503)
    final = jobs.wait("etth1-tune", poll_s=10)
    assert final.succeeded
    assert fake.sleeps == [4.0, 8.0, 10.0, 10.0]  # two backoffs, then the two polls
    assert fake.notices == [
        "reading RayJob ml/etth1-tune: HTTP 503 Service Unavailable; retrying in 4 s "
        "(attempt 2 of 6)",
        "reading RayJob ml/etth1-tune: HTTP 503 Service Unavailable; retrying in 8 s "
        "(attempt 3 of 6)",
    ]


def test_wait_rides_out_refused_connections_once_the_server_answered(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    """The API server goes away mid-wait (connections refused) and comes back two backoffs later."""
    double, api_client = api
    fake = FakeTime()
    jobs = fake.client(api_client)
    jobs.submit(_manifests())
    double.script_status("ml", "etth1-tune", [SUCCEEDED])
    double.down()
    fake.on_sleep = lambda n: double.up() if n == 2 else None
    assert jobs.wait("etth1-tune", poll_s=10).succeeded
    assert fake.sleeps == [4.0, 8.0]
    assert len(fake.notices) == 2
    assert all(
        "cannot reach the Kubernetes API ([Errno 111] Connection refused); retrying" in n
        for n in fake.notices
    )


@pytest.mark.parametrize(
    ("budget_s", "sleeps"),
    [(120.0, [4.0, 8.0, 16.0, 32.0, 60.0]), (30.0, [4.0, 8.0, 16.0])],
)
def test_a_lasting_outage_ends_in_one_line_within_the_budget(
    api: tuple[KubeApiDouble, k8s.ApiClient], budget_s: float, sleeps: list[float]
) -> None:
    double, api_client = api
    fake = FakeTime()
    jobs = fake.client(api_client, budget_s=budget_s)
    jobs.submit(_manifests())
    double.fail("GET", "rayjobs", *[503] * 20)
    with pytest.raises(DeployError) as caught:
        jobs.wait("etth1-tune")
    assert fake.sleeps == sleeps and sum(fake.sleeps) <= budget_s
    tries = len(sleeps) + 1
    assert caught.value.message == (
        "reading RayJob ml/etth1-tune: HTTP 503: scripted 503 "
        f"(gave up after {tries} tries in {sum(sleeps):.0f} s)"
    )
    assert "\n" not in caught.value.one_line()
    assert [r for r in double.requests if r[0] == "GET" and "rayjobs" in r[1]] == [
        ("GET", "/apis/ray.io/v1/namespaces/ml/rayjobs/etth1-tune")
    ] * tries


def test_a_lasting_refusal_after_contact_gives_up_naming_the_api(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    double, api_client = api
    fake = FakeTime()
    jobs = fake.client(api_client)
    jobs.list()  # the server has answered once
    double.down()
    with pytest.raises(DeployError) as caught:
        jobs.status("etth1-tune")
    assert len(fake.sleeps) == 5
    assert "cannot reach the Kubernetes API at 127.0.0.1:" in caught.value.message
    assert caught.value.message.endswith("Connection refused) (gave up after 6 tries in 120 s)")


def test_throttling_honours_retry_after(
    api: tuple[KubeApiDouble, k8s.ApiClient], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the client `tsdl` builds from a kubeconfig: tsdl waits out the Retry-After (urllib3
    by default would sleep it out itself, unbounded, before tsdl ever saw the 429)."""
    double, api_client = api
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters:\n- name: c\n  cluster: {{server: '{api_client.configuration.host}'}}\n"
        "contexts:\n- name: c\n  context: {cluster: c, user: u}\n"
        "users:\n- name: u\n  user: {token: t}\n"
    )
    monkeypatch.setattr(k8s.Configuration, "_default", None)  # load_kube_config replaces it
    # kubernetes reads $KUBECONFIG once, at import
    monkeypatch.setattr(
        "kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    fake = FakeTime()
    double.add("rayjobs", {"metadata": {"name": "etth1-tune", "namespace": "ml"}}, "ml")
    double.fail("GET", "rayjobs", 429, retry_after="7")
    with client_module._default_api_client() as tsdl_api_client:
        assert fake.client(tsdl_api_client).status("etth1-tune").name == "etth1-tune"
    assert fake.sleeps == [7.0]
    assert fake.notices == [
        "reading RayJob ml/etth1-tune: HTTP 429 Too Many Requests; retrying in 7 s (attempt 2 of 6)"
    ]


def test_a_retry_after_beyond_the_budget_fails_at_once(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    double, api_client = api
    fake = FakeTime()
    double.fail("GET", "rayjobs", 429, retry_after="600")
    with pytest.raises(DeployError, match=r"HTTP 429: scripted 429 \(fix: the API server is over"):
        fake.client(api_client).status("etth1-tune")
    assert fake.sleeps == []


def _forbid_get(double: KubeApiDouble) -> None:
    double.forbidden.add(("GET", "rayjobs"))


def _fail_create(double: KubeApiDouble) -> None:
    double.fail("POST", "rayjobs", 503)


@pytest.mark.parametrize(
    ("break_it", "call", "expected"),
    [
        (_forbid_get, lambda jobs: jobs.status("etth1-tune"), "HTTP 403"),
        (lambda double: None, lambda jobs: jobs.status("nope"), "HTTP 404"),
        (_fail_create, lambda jobs: jobs.submit(_manifests()), "creating RayJob .*HTTP 503"),
    ],
    ids=["403", "404", "create-503"],
)
def test_client_errors_and_writes_are_not_retried(
    api: tuple[KubeApiDouble, k8s.ApiClient], break_it: Any, call: Any, expected: str
) -> None:
    """A 403/404 will not change by waiting; a create that got a 503 may have happened."""
    double, api_client = api
    fake = FakeTime()
    break_it(double)
    with pytest.raises(DeployError, match=expected) as caught:
        call(fake.client(api_client))
    assert fake.sleeps == [] and fake.notices == []
    assert "gave up" not in caught.value.message


def test_unreachable_api_at_the_first_call_fails_at_once() -> None:
    """A server that never answered is a wrong kubeconfig or a cluster that is down: no waiting."""
    fake = FakeTime()
    configuration = k8s.Configuration()
    configuration.host = "http://127.0.0.1:9"
    configuration.retries = False
    with k8s.ApiClient(configuration) as api_client, pytest.raises(DeployError) as caught:
        fake.client(api_client).status("x")
    assert fake.sleeps == []
    assert "gave up" not in caught.value.message


def test_missing_namespace_404_says_so(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    """A user who may not read ServiceAccounts submits into a namespace that does not exist."""
    double, api_client = api
    double.namespaces = {"ml"}
    double.forbidden |= {("GET", "serviceaccounts"), ("GET", "persistentvolumeclaims")}
    with pytest.raises(DeployError) as caught:
        RayJobClient(api_client, namespace="team-b").submit(_manifests(namespace="team-b"))
    assert caught.value.message == (
        'creating ConfigMap team-b/etth1-tune-config: HTTP 404: namespaces "team-b" not found'
    )
    assert caught.value.hint.startswith("namespace team-b does not exist")
    assert "--create-namespace" in caught.value.hint and "KubeRay" not in caught.value.hint


def test_missing_crd_404_names_the_operator(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    double.unserved.add("rayjobs")
    with pytest.raises(DeployError) as caught:
        RayJobClient(api_client, namespace="ml").list()
    assert caught.value.message == "listing RayJobs in ml: HTTP 404: Not Found"
    assert "KubeRay operator" in caught.value.hint and "rayjobs.ray.io" in caught.value.hint


def test_missing_object_404_does_not_blame_the_operator(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    _, api_client = api
    with pytest.raises(DeployError) as caught:
        RayJobClient(api_client, namespace="ml").status("nope")
    assert "tsdl status -n NAMESPACE" in caught.value.hint
    assert "KubeRay" not in caught.value.hint and "does not exist" not in caught.value.hint


def test_cli_wait_prints_retry_notices_on_stderr(
    api: tuple[KubeApiDouble, k8s.ApiClient],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """stdout keeps the job's statuses; each retry is one line on stderr."""
    double, api_client = api
    fake = FakeTime()
    monkeypatch.setattr(client_module, "_default_api_client", lambda: api_client)
    monkeypatch.setattr(client_module, "RetryPolicy", fake.policy)
    config = tmp_path / "config.yaml"
    config.write_text("experiment:\n  name: ETTh1\nresources:\n  use_gpu: true\n")
    double.script_status("ml", "etth1-tune", [RUNNING, SUCCEEDED])
    double.fail("GET", "rayjobs", 502, 503, 504)
    assert main(["submit", "-c", str(config), "-n", "ml", "--wait", "--poll", "0"]) == 0
    captured = capsys.readouterr()
    assert "retrying" not in captured.out and "deployment=Complete" in captured.out
    lines = captured.err.splitlines()
    assert [line.rsplit("(", 1)[-1] for line in lines] == [
        "attempt 2 of 6)",
        "attempt 3 of 6)",
        "attempt 4 of 6)",
    ]
    assert all(line.startswith("reading RayJob ml/etth1-tune: HTTP 50") for line in lines)


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


@pytest.mark.parametrize(("modes", "head_follows"), [(["ReadWriteOnce"], True), (["ReadWriteMany"], False)])
def test_cli_submit_places_pods_by_the_real_claims_access_modes(
    api: tuple[KubeApiDouble, k8s.ApiClient],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    modes: list[str],
    head_follows: bool,
) -> None:
    """N1: submit reads the claim: ReadWriteOnce keeps the head on the GPU worker's node (no
    Multi-Attach), ReadWriteMany leaves the scheduler free."""
    double, api_client = api
    double.add(
        "persistentvolumeclaims",
        {"metadata": {"name": "team-results"}, "spec": {"accessModes": modes}},
        "ml",
    )
    monkeypatch.setattr(client_module, "_default_api_client", lambda: api_client)
    config = tmp_path / "config.yaml"
    config.write_text("experiment:\n  name: ETTh1\nresources:\n  use_gpu: true\n")
    assert main(["submit", "-c", str(config), "-n", "ml", "--storage", "team-results"]) == 0
    job = double.objects[("rayjobs", "ml", "etth1-tune")]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert ("podAffinity" in head.get("affinity", {})) is head_follows


def test_logs_previous_shows_every_kept_attempt_or_says_it_is_gone(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    """N14: after a head loss the newest submitter only streams the resumed job."""
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    labels = {"batch.kubernetes.io/job-name": "etth1-tune"}
    double.add_pod("ml", "etth1-tune-a", labels, "trial 1 done\nWebSocket closed\n", "2026-01-01T00:00:00Z")
    assert "no earlier submitter attempt" in jobs.logs("etth1-tune", previous=True)
    double.add_pod("ml", "etth1-tune-b", labels, "resuming study etth1-tune\n", "2026-01-01T01:00:00Z")
    text = jobs.logs("etth1-tune", previous=True)
    assert text.index("# attempt 1 of 2: pod etth1-tune-a") < text.index("trial 1 done")
    assert text.index("trial 1 done") < text.index("# attempt 2 of 2: pod etth1-tune-b") < text.index("resuming")
    assert jobs.logs("etth1-tune") == "resuming study etth1-tune\n"



def _stuck_pod(name: str, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"app.kubernetes.io/instance": "etth1-tune"}},
        "spec": {"containers": [{"name": "ray-worker", "image": "ghcr.io/tsdl/tsdl:0.1.0-gpu"}]},
        "status": status,
    }


def _waits(jobs: RayJobClient) -> list[str]:
    from datetime import datetime

    return jobs.pod_waits("etth1-tune", now=datetime(2026, 1, 1, 0, 10, tzinfo=UTC))


def test_status_names_an_image_that_cannot_be_pulled_and_wait_fails_at_once(
    api: tuple[KubeApiDouble, k8s.ApiClient],
) -> None:
    """I1: the default tags do not exist until a release is tagged; ImagePullBackOff must not sit
    for the 30-minute pre-running deadline."""
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    double.add("pods", _stuck_pod("etth1-tune-head-x", {
        "phase": "Pending",
        "containerStatuses": [{"name": "ray-head", "image": "ghcr.io/tsdl/tsdl:0.1.0-cpu", "imageID": "",
                               "ready": False, "restartCount": 0,
                               "state": {"waiting": {"reason": "ImagePullBackOff",
                                                     "message": "Back-off pulling image \"ghcr.io/tsdl/tsdl:0.1.0-cpu\""}}}],
    }), "ml")
    (line,) = _waits(jobs)
    assert line.startswith("pod etth1-tune-head-x: image ghcr.io/tsdl/tsdl:0.1.0-cpu cannot be pulled (ImagePullBackOff")
    assert "make image" in line
    double.script_status("ml", "etth1-tune", [{"jobDeploymentStatus": "Initializing"}])
    with pytest.raises(DeployError, match="cannot start: pod etth1-tune-head-x: image .* cannot be pulled"):
        jobs.wait("etth1-tune", timeout_s=60, poll_s=0)


def test_status_names_a_worker_stuck_waiting_for_the_head(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    """A wrong Ray token loops silently in KubeRay's wait-gcs-ready init container."""
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    double.add("pods", _stuck_pod("etth1-tune-gpu-worker-y", {
        "phase": "Pending",
        "initContainerStatuses": [{"name": "wait-gcs-ready", "image": "x", "imageID": "", "ready": False,
                                   "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:08:00Z"}}}],
    }), "ml")
    (line,) = _waits(jobs)
    assert "waiting 120s for the Ray head's GCS" in line and "wrong Ray token" in line
    assert "kubectl logs etth1-tune-gpu-worker-y -c wait-gcs-ready" in line


def test_status_names_the_schedulers_reason_and_volume_events(api: tuple[KubeApiDouble, k8s.ApiClient]) -> None:
    double, api_client = api
    jobs = RayJobClient(api_client, namespace="ml")
    jobs.submit(_manifests())
    double.add("pods", _stuck_pod("etth1-tune-gpu-worker-z", {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}],
    }), "ml")
    double.add("pods", _stuck_pod("etth1-tune-head-w", {"phase": "Pending"}), "ml")
    double.add("events", {
        "metadata": {"name": "e1", "namespace": "ml", "creationTimestamp": "2026-01-01T00:05:00Z"},
        "involvedObject": {"kind": "Pod", "name": "etth1-tune-head-w"},
        "type": "Warning", "reason": "FailedAttachVolume", "lastTimestamp": "2026-01-01T00:05:00Z",
        "message": "Multi-Attach error for volume \"pvc-1\" Volume is already used by pod(s) x",
    }, "ml")
    waits = _waits(jobs)
    assert "pod etth1-tune-gpu-worker-z: not scheduled: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu." in waits
    assert any(w.startswith("pod etth1-tune-head-w: FailedAttachVolume: Multi-Attach error") for w in waits)
    double.forbidden |= {("GET", "events"), ("GET", "pods")}
    assert _waits(jobs) == []  # no read rights: nothing to say, no failure
