"""Create, follow, read logs of and cancel tsdl RayJobs through the Kubernetes API.

Every API failure becomes a one-line DeployError that names the RayJob, and a failed job reports
KubeRay's `jobDeploymentStatus`, `jobStatus`, reason and message rather than an API exception.
Reads wait out a flaky API server (tsdl.deploy._calls), so one 503 does not end a day-long wait.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tsdl.deploy._calls import Allowed, ApiCalls, RetryPolicy, transport_retries
from tsdl.errors import DeployError

__all__ = ["RayJobClient", "RayJobStatus", "RetryPolicy", "TERMINAL_DEPLOYMENT_STATUSES"]

_log = logging.getLogger(__name__)

_GROUP, _VERSION, _PLURAL = "ray.io", "v1", "rayjobs"
TERMINAL_DEPLOYMENT_STATUSES = frozenset({"Complete", "Failed", "ValidationFailed"})
_TSDL_SELECTOR = "app.kubernetes.io/name=tsdl"


@dataclass(frozen=True)
class RayJobStatus:
    """What KubeRay reports about one RayJob (`.status`), flattened."""

    name: str
    namespace: str
    deployment_status: str
    job_status: str
    reason: str = ""
    message: str = ""
    ray_cluster: str = ""
    dashboard_url: str = ""

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> RayJobStatus:
        status = obj.get("status") or {}
        return cls(
            name=obj["metadata"]["name"],
            namespace=obj["metadata"].get("namespace", ""),
            deployment_status=status.get("jobDeploymentStatus") or "New",
            job_status=status.get("jobStatus") or "PENDING",
            reason=status.get("reason") or "",
            message=status.get("message") or "",
            ray_cluster=status.get("rayClusterName") or "",
            dashboard_url=status.get("dashboardURL") or "",
        )

    @property
    def finished(self) -> bool:
        return self.deployment_status in TERMINAL_DEPLOYMENT_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.deployment_status == "Complete" and self.job_status == "SUCCEEDED"

    def one_line(self) -> str:
        """`name: deployment=Running job=RUNNING cluster=...` plus reason and message if any."""
        parts = [f"{self.name}: deployment={self.deployment_status} job={self.job_status}"]
        if self.ray_cluster:
            parts.append(f"cluster={self.ray_cluster}")
        if self.reason:
            parts.append(f"reason={self.reason}")
        if self.message:
            parts.append(f"message={' '.join(self.message.split())!r}")
        return " ".join(parts)


class RayJobClient:
    """The `ray.io/v1` rayjobs resource plus the ConfigMap, NetworkPolicy and pods around it."""

    def __init__(
        self,
        api_client: Any | None = None,
        *,
        namespace: str = "default",
        retry: RetryPolicy | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        """Args:
        api_client: a `kubernetes.client.ApiClient`; None loads in-cluster or kubeconfig credentials.
        namespace: where the RayJobs live.
        retry: how reads (and so every poll of `wait`) wait out a flaky API server; default
            up to 6 tries within about 2 minutes. Creates and deletes are tried once.
        notify: told one line before each retry (default: a warning on this module's logger).
        """
        from kubernetes import client

        self.namespace = namespace
        self._api = ApiCalls(retry or RetryPolicy(), notify or _log.warning)
        self._api_client = api_client if api_client is not None else _default_api_client()
        self._custom = client.CustomObjectsApi(self._api_client)
        self._core = client.CoreV1Api(self._api_client)
        self._networking = client.NetworkingV1Api(self._api_client)

    def submit(self, manifests: list[dict[str, Any]]) -> RayJobStatus:
        """Check the namespace's prerequisites, create the ConfigMap and NetworkPolicy
        (replacing leftovers of an earlier run) and then the RayJob.

        Raises:
            DeployError: a prerequisite is missing (naming the command that creates it), the
                RayJob exists already (409), is invalid (422), or the API failed.
        """
        job = next((m for m in manifests if m.get("kind") == "RayJob"), None)
        if job is None:
            raise DeployError(
                "nothing to submit: no RayJob among the manifests", hint="use build_manifests"
            )
        name = job["metadata"]["name"]
        self.check_prerequisites(job)
        for manifest in manifests:
            if manifest.get("kind") in _OWNED:
                self._apply_owned(manifest, job_name=name)
        created = self._api.write(
            f"creating RayJob {self.namespace}/{name}",
            self._rayjobs("create"),
            job,
        )
        return RayJobStatus.from_object(created)

    def status(self, name: str) -> RayJobStatus:
        """The RayJob's current status (404 is a DeployError naming the job)."""
        obj = self._api.read(
            f"reading RayJob {self.namespace}/{name}",
            self._rayjobs("get"),
            name,
        )
        return RayJobStatus.from_object(obj)

    def list(self) -> list[RayJobStatus]:
        """Every tsdl RayJob in the namespace, by name."""
        listed = self._api.read(
            f"listing RayJobs in {self.namespace}",
            self._rayjobs("list"),
            label_selector=_TSDL_SELECTOR,
        )
        return sorted(
            (RayJobStatus.from_object(o) for o in listed.get("items", [])), key=lambda s: s.name
        )

    def wait(
        self,
        name: str,
        *,
        timeout_s: float = 24 * 3600,
        poll_s: float = 10.0,
        on_change: Callable[[RayJobStatus], None] | None = None,
    ) -> RayJobStatus:
        """Poll until the RayJob finishes; report each change of status.

        A transient API failure during a poll is retried (see `RetryPolicy`); only one that
        outlasts the retry budget ends the wait.

        Raises:
            DeployError: the job failed (with KubeRay's statuses and message), timed out, or the
                API stayed unavailable.
        """
        clock, sleep = self._api.retry.clock, self._api.retry.sleep
        deadline = clock() + timeout_s
        last: RayJobStatus | None = None
        while True:
            current = self.status(name)
            if current != last and on_change is not None:
                on_change(current)
            last = current
            if current.finished:
                if current.succeeded:
                    return current
                raise DeployError(
                    f"RayJob {self.namespace}/{current.one_line()}",
                    hint=f"read the driver log with `tsdl logs {name} -n {self.namespace}`",
                )
            pulls = [line for line in self.pod_waits(name) if "cannot be pulled" in line]
            if pulls:  # I1: fail in a minute, not after preRunningDeadlineSeconds (30 min)
                raise DeployError(
                    f"RayJob {self.namespace}/{name} cannot start: {pulls[0]}",
                    hint=f"fix the image, then `tsdl cancel {name} -n {self.namespace}` and submit again",
                )
            if clock() >= deadline:
                raise DeployError(
                    f"RayJob {self.namespace}/{name} still unfinished after {timeout_s:g}s: "
                    f"{current.one_line()}",
                    hint=f"keep following with `tsdl status {name}` or raise --timeout",
                )
            sleep(poll_s)

    def logs(self, name: str, *, tail_lines: int | None = None, previous: bool = False) -> str:
        """The driver output, read from the newest pod of the submitter Job (named after the RayJob).

        With ``previous``, every submitter attempt still kept, oldest first, each under a header:
        after a head loss the newest pod only streams the resumed job (N14). When the earlier
        attempts are gone that is said instead of showing nothing."""
        pods = self._submitter_pods(name)
        if not pods:
            status = self.status(name)
            raise DeployError(
                f"no submitter pod for RayJob {self.namespace}/{name} yet ({status.one_line()})",
                hint="the submitter starts once the Ray cluster is ready; retry in a minute",
            )
        pods = sorted(pods, key=lambda pod: pod.metadata.creation_timestamp)
        kwargs = {"tail_lines": tail_lines} if tail_lines is not None else {}
        if not previous:
            return self._pod_log(pods[-1].metadata.name, kwargs)
        parts = []
        if len(pods) == 1:
            parts.append(
                f"# no earlier submitter attempt of {name} is left (there was none, or its pod was "
                "deleted); after a head loss the first attempt's driver output went with the old head\n"
            )
        for number, pod in enumerate(pods, 1):
            phase = getattr(pod.status, "phase", None) or "Unknown"
            parts.append(f"# attempt {number} of {len(pods)}: pod {pod.metadata.name} ({phase})\n")
            parts.append(self._pod_log(pod.metadata.name, kwargs))
        return "".join(parts)

    def _pod_log(self, pod: str, kwargs: dict[str, Any]) -> str:
        return str(
            self._api.read(
                f"reading logs of pod {self.namespace}/{pod}",
                self._core.read_namespaced_pod_log,
                pod,
                self.namespace,
                **kwargs,
            )
        )

    def pod_waits(self, name: str, *, now: datetime | None = None) -> list[str]:
        """One line per pod of the job that is stuck, saying on what (within a minute, not when
        `preRunningDeadlineSeconds` fails the job 30 minutes later): an image that cannot be
        pulled, a crash loop, the scheduler's reason, KubeRay's `wait-gcs-ready` init container
        (a wrong Ray token or a blocked network loops there silently), or the pod's newest warning
        event (e.g. a Multi-Attach volume). Unreadable pods or events (403) say nothing."""
        now = now or datetime.now(UTC)
        pods = self._api.read(
            f"listing pods of job {self.namespace}/{name}",
            self._core.list_namespaced_pod,
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={name}",
            allow=(403,),
        )
        if isinstance(pods, Allowed):
            return []
        lines = []
        for pod in sorted(pods.items, key=lambda p: p.metadata.name):
            line = _pod_wait(pod, now) or self._warning_event(pod, now)
            if line:
                lines.append(f"pod {pod.metadata.name}: {line}")
        return lines

    def _warning_event(self, pod: Any, now: datetime) -> str | None:
        """The newest Warning event of a pod that is not running after a minute."""
        phase = getattr(pod.status, "phase", None)
        if phase not in ("Pending", None) or _age_s(pod.metadata.creation_timestamp, now) < _STUCK_S:
            return None
        events = self._api.read(
            f"listing events of pod {self.namespace}/{pod.metadata.name}",
            self._core.list_namespaced_event,
            self.namespace,
            field_selector=f"involvedObject.name={pod.metadata.name}",
            allow=(403,),
        )
        if isinstance(events, Allowed):
            return None
        warnings = [e for e in events.items if e.type == "Warning"]
        if not warnings:
            return None
        newest = max(warnings, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return f"{newest.reason}: {' '.join((newest.message or '').split())[:200]}"

    def check_prerequisites(self, job: dict[str, Any]) -> None:
        """The ServiceAccount and results claim the RayJob's pods use must exist already;
        without them the pods are rejected or stay Pending and the job never starts.

        A 403 (the user may not read them) skips the check rather than blocking the submit.

        Raises:
            DeployError: naming the missing object and the command that creates it.
        """
        head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
        needed: list[tuple[str, str, Callable[..., Any]]] = []
        account = head.get("serviceAccountName")
        if account:
            needed.append(("ServiceAccount", account, self._core.read_namespaced_service_account))
        for volume in head.get("volumes", []):
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                needed.append(
                    (
                        "PersistentVolumeClaim",
                        claim,
                        self._core.read_namespaced_persistent_volume_claim,
                    )
                )
        for kind, name, read in needed:
            found = self._api.read(
                f"reading {kind} {self.namespace}/{name}",
                read,
                name,
                self.namespace,
                allow=(403, 404),
            )
            if isinstance(found, Allowed) and found.status == 404:
                raise DeployError(
                    f"{kind} {self.namespace}/{name} does not exist, so the job's pods could not "
                    "start",
                    hint=_prerequisites_hint(self.namespace, kind, name),
                )

    def claim_access_modes(self, claim: str) -> list[str] | None:
        """The access modes of an existing claim; None when it is missing or unreadable (403),
        which `check_prerequisites` reports or skips."""
        found = self._api.read(
            f"reading PersistentVolumeClaim {self.namespace}/{claim}",
            self._core.read_namespaced_persistent_volume_claim,
            claim,
            self.namespace,
            allow=(403, 404),
        )
        if isinstance(found, Allowed):
            return None
        modes = getattr(getattr(found, "spec", None), "access_modes", None)
        return list(modes) if modes else None

    def cancel(self, name: str) -> None:
        """Delete the RayJob (KubeRay tears its cluster down), and the ConfigMap and
        NetworkPolicy that `tsdl submit` created for it. Objects another tool created (Helm,
        kubectl) are left to it: `helm uninstall` removes the chart's."""
        from kubernetes import client

        self._api.write(
            f"deleting RayJob {self.namespace}/{name}",
            self._rayjobs("delete"),
            name,
            body=client.V1DeleteOptions(propagation_policy="Background"),
        )
        for kind, suffix in (("ConfigMap", "-config"), ("NetworkPolicy", "-ray")):
            read, _, _, delete = self._verbs(kind)
            obj_name = f"{name}{suffix}"
            found = self._api.read(
                f"reading {kind} {self.namespace}/{obj_name}",
                read,
                obj_name,
                self.namespace,
                allow=(404,),
            )
            if isinstance(found, Allowed) or _creator(found) != "tsdl":
                continue
            self._api.write(
                f"deleting {kind} {self.namespace}/{obj_name}",
                delete,
                obj_name,
                self.namespace,
                allow=(404,),
            )

    def _rayjobs(self, verb: str) -> Callable[..., Any]:
        """`CustomObjectsApi.<verb>_namespaced_custom_object` bound to ray.io/v1 rayjobs here."""
        method = getattr(self._custom, f"{verb}_namespaced_custom_object")
        return functools.partial(method, _GROUP, _VERSION, self.namespace, _PLURAL)

    def _verbs(self, kind: str) -> tuple[Callable[..., Any], ...]:
        """read, create, replace, delete for a kind `tsdl submit` creates next to the RayJob."""
        if kind == "ConfigMap":
            api, suffix = self._core, "config_map"
        else:
            api, suffix = self._networking, "network_policy"
        return tuple(
            getattr(api, f"{verb}_namespaced_{suffix}")
            for verb in ("read", "create", "replace", "delete")
        )

    def _apply_owned(self, manifest: dict[str, Any], *, job_name: str) -> None:
        kind = manifest["kind"]
        name = manifest["metadata"]["name"]
        _, create, replace, _ = self._verbs(kind)
        action = f"creating {kind} {self.namespace}/{name}"
        if not isinstance(
            self._api.write(action, create, self.namespace, manifest, allow=(409,)), Allowed
        ):
            return
        # A leftover of an earlier run of the same job: replace it, unless that job still exists.
        existing = self._api.read(
            f"reading RayJob {self.namespace}/{job_name}",
            self._rayjobs("get"),
            job_name,
            allow=(404,),
        )
        if not isinstance(existing, Allowed):
            raise DeployError(
                f"RayJob {self.namespace}/{job_name} already exists",
                hint=f"cancel it with `tsdl cancel {job_name} -n {self.namespace}` or set deploy.name",
            )
        self._api.write(
            f"replacing {kind} {self.namespace}/{name}", replace, name, self.namespace, manifest
        )

    def _submitter_pods(self, name: str) -> list[Any]:
        for selector in (f"batch.kubernetes.io/job-name={name}", f"job-name={name}"):
            pods = self._api.read(
                f"listing pods of job {self.namespace}/{name}",
                self._core.list_namespaced_pod,
                self.namespace,
                label_selector=selector,
            ).items
            if pods:
                return list(pods)
        return []


_STUCK_S = 60.0
_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})


def _age_s(since: Any, now: datetime) -> float:
    if since is None:
        return 0.0
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return (now - since).total_seconds()


def _pod_wait(pod: Any, now: datetime) -> str | None:
    """What keeps one pod from running, from its own status (no events needed)."""
    status = pod.status
    if status is None:
        return None
    for cs in [*(status.init_container_statuses or []), *(status.container_statuses or [])]:
        waiting = cs.state.waiting if cs.state else None
        if waiting and waiting.reason in _PULL_FAILURES:
            message = " ".join((waiting.message or "").split())[:200]
            return (
                f"image {cs.image} cannot be pulled ({waiting.reason}: {message}) "
                "(fix: build and push it (`make image`, docs/deploy.md), set deploy.image / image, "
                "or give a pull secret: deploy.image_pull_secrets / imagePullSecrets)"
            )
        if waiting and waiting.reason == "CrashLoopBackOff":
            last = cs.last_state.terminated if cs.last_state else None
            exit_text = f"last exit code {last.exit_code} ({last.reason})" if last else "restarting"
            return f"container {cs.name} keeps crashing, {exit_text} (kubectl logs -p {pod.metadata.name} -c {cs.name})"
    for cs in status.init_container_statuses or []:
        running = cs.state.running if cs.state else None
        if running and cs.name == "wait-gcs-ready" and _age_s(running.started_at, now) >= _STUCK_S:
            return (
                f"waiting {_age_s(running.started_at, now):.0f}s for the Ray head's GCS (KubeRay's "
                "init container wait-gcs-ready): the head is not up, or a wrong Ray token or a "
                f"NetworkPolicy keeps this pod out (kubectl logs {pod.metadata.name} -c wait-gcs-ready)"
            )
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False" and condition.message:
            return f"not scheduled: {' '.join(condition.message.split())[:240]}"
    return None


def _default_api_client() -> Any:
    import yaml
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise DeployError(
                f"no Kubernetes credentials: {' '.join(str(exc).split())}",
                hint="point KUBECONFIG at your cluster (kubectl config current-context must work)",
            ) from None
        # A kubeconfig that is not YAML, or YAML of the wrong shape, fails inside the loader.
        except (yaml.YAMLError, TypeError, AttributeError, KeyError, ValueError) as exc:
            where = os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise DeployError(
                f"malformed kubeconfig {where}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                hint="fix or regenerate it (`kubectl config view` must print it), or point KUBECONFIG "
                "at a working one",
            ) from None
    configuration = client.Configuration.get_default_copy()
    configuration.retries = transport_retries()
    return client.ApiClient(configuration)


_OWNED = ("ConfigMap", "NetworkPolicy")  # what `tsdl submit` creates next to the RayJob


def _creator(obj: Any) -> str:
    """The `app.kubernetes.io/managed-by` label of an API object (model or dict)."""
    metadata = obj.get("metadata", {}) if isinstance(obj, dict) else obj.metadata
    labels = (metadata.get("labels") if isinstance(metadata, dict) else metadata.labels) or {}
    return str(labels.get("app.kubernetes.io/managed-by", ""))


def _prerequisites_hint(namespace: str, kind: str, name: str) -> str:
    """Which command creates a missing prerequisite (the names of the default release `tsdl`)."""
    if name in {"tsdl", "tsdl-results"}:
        return (
            f"create the namespace's prerequisites once: helm install tsdl helm/tsdl -n {namespace} "
            f"--create-namespace --set job.enabled=false (or kubectl apply -n {namespace} "
            "-f k8s/prerequisites.yaml)"
        )
    return (
        f"create {kind} {name} in {namespace}, or unset deploy.service_account / "
        "deploy.storage.claim_name to use the namespace's prerequisites (release tsdl)"
    )
