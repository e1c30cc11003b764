"""A TEST DOUBLE of the Kubernetes API server: not Kubernetes, just enough HTTP for the tsdl client.

It serves, on 127.0.0.1 from a thread, the paths the real `kubernetes` client calls:
`ray.io/v1` rayjobs (create, get, list with labelSelector, delete), core ConfigMaps,
ServiceAccounts and PersistentVolumeClaims and `networking.k8s.io/v1` NetworkPolicies (create,
get, replace, delete), pods (list with labelSelector) and pods/log. Errors are `Status` objects with
the codes a real API server uses (404 NotFound, 409 AlreadyExists, 422 Invalid). There is no
operator: tests script the RayJob's `.status` progression with `script_status`, and each GET of
that job advances it one step, which is how the client's polling "watch" sees it change.

Failures a real API server (or the load balancer in front of it) produces can be scripted:
`fail` answers the next matching requests with 5xx/429 `Status` objects (and Retry-After),
`namespaces` makes creates in any other namespace a 404 `namespaces "x" not found`,
`unserved` answers a resource's paths "404 page not found" as when its CRD is not installed, and
`down()`/`up()` stop and restart the listener on the same port (connections are refused between).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

__all__ = ["KubeApiDouble", "serve"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ROUTES = [
    (re.compile(r"^/apis/ray\.io/v1/namespaces/([^/]+)/rayjobs(?:/([^/]+))?$"), "rayjobs"),
    (re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps(?:/([^/]+))?$"), "configmaps"),
    (
        re.compile(r"^/api/v1/namespaces/([^/]+)/serviceaccounts(?:/([^/]+))?$"),
        "serviceaccounts",
    ),
    (
        re.compile(r"^/api/v1/namespaces/([^/]+)/persistentvolumeclaims(?:/([^/]+))?$"),
        "persistentvolumeclaims",
    ),
    (
        re.compile(
            r"^/apis/networking\.k8s\.io/v1/namespaces/([^/]+)/networkpolicies(?:/([^/]+))?$"
        ),
        "networkpolicies",
    ),
    (re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?$"), "pods"),
    (re.compile(r"^/api/v1/namespaces/([^/]+)/events(?:/([^/]+))?$"), "events"),
]


class KubeApiDouble:
    """In-memory objects by (resource, namespace, name), plus scripted statuses and pod logs."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.requests: list[tuple[str, str]] = []
        self._scripts: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.forbidden: set[tuple[str, str]] = set()
        """(HTTP method, resource) pairs answered 403, as RBAC would."""
        self.namespaces: set[str] | None = None
        """When set, the namespaces that exist: a create anywhere else is a 404, as on a real
        server (a get there is the object's own 404, a list is empty)."""
        self.unserved: set[str] = set()
        """Resources whose API the server does not serve (their CRD is not installed)."""
        self._faults: list[tuple[str, str, int, dict[str, str]]] = []
        self.down: Callable[[], None] = lambda: None
        """Stop listening (set by `serve`); `up` listens again on the same port."""
        self.up: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._uid = 0

    def add(self, resource: str, obj: dict[str, Any], namespace: str) -> None:
        """Store an object as if created earlier (e.g. by `helm install` or `kubectl apply`)."""
        self.objects[(resource, namespace, obj["metadata"]["name"])] = obj

    def add_prerequisites(self, namespace: str, release: str = "tsdl") -> None:
        """What `helm install RELEASE helm/tsdl --set job.enabled=false` leaves in a namespace."""
        self.add("serviceaccounts", {"metadata": {"name": release}}, namespace)
        self.add("persistentvolumeclaims", {"metadata": {"name": f"{release}-results"}}, namespace)

    def script_status(self, namespace: str, name: str, statuses: list[dict[str, Any]]) -> None:
        """Each GET of the RayJob applies the next status; the last one sticks."""
        self._scripts[(namespace, name)] = list(statuses)

    def add_pod(
        self, namespace: str, name: str, labels: dict[str, str], log: str, created: str
    ) -> None:
        self.objects[("pods", namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "creationTimestamp": created,
            },
            "spec": {"containers": [{"name": "ray-job-submitter", "image": "tsdl"}]},
            "status": {"phase": "Running"},
        }
        self.logs[(namespace, name)] = log

    def fail(self, method: str, resource: str, *codes: int, retry_after: str | None = None) -> None:
        """Answer the next len(codes) `method` requests on `resource` with these HTTP codes
        (503 as an API server restarting behind its load balancer, 429 as priority-and-fairness
        throttling), with a Retry-After header if given."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._faults += [(method, resource, code, headers) for code in codes]

    # -- request handling (called from the server thread) --------------------------------------

    def handle(self, method: str, url: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        """The HTTP status, body (a JSON object or text) and extra headers for one request."""
        parsed = urlparse(url)
        self.requests.append((method, parsed.path))
        routed = next(((p.match(parsed.path), r) for p, r in _ROUTES if p.match(parsed.path)), None)
        if routed is None:
            return (
                404,
                _status(
                    404,
                    "NotFound",
                    f"the server could not find the requested resource {parsed.path}",
                ),
                {},
            )
        match, resource = routed
        namespace, name = match.group(1), match.group(2)
        if resource in self.unserved:
            return 404, "404 page not found\n", {}
        with self._lock:
            fault = next((f for f in self._faults if f[0] == method and f[1] == resource), None)
            if fault is not None:
                self._faults.remove(fault)
                reason = {429: "TooManyRequests", 503: "ServiceUnavailable"}.get(
                    fault[2], "InternalError"
                )
                return fault[2], _status(fault[2], reason, f"scripted {fault[2]}"), fault[3]
        return (*self._route(method, resource, namespace, name, match, parsed.query, body), {})

    def _route(
        self,
        method: str,
        resource: str,
        namespace: str,
        name: str | None,
        match: re.Match[str],
        raw_query: str,
        body: bytes,
    ) -> tuple[int, Any]:
        if (method, resource) in self.forbidden:
            return 403, _status(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "tester" cannot {method.lower()} resource '
                f'"{resource}" in the namespace "{namespace}"',
                name or "",
                resource,
            )
        if method == "POST" and self.namespaces is not None and namespace not in self.namespaces:
            return 404, _status(
                404, "NotFound", f'namespaces "{namespace}" not found', namespace, "namespaces"
            )
        query = parse_qs(raw_query)
        with self._lock:
            if resource == "pods" and match.group(3):
                return self._pod_log(namespace, name, query)
            if method == "GET" and name is None:
                return 200, self._list(resource, namespace, query.get("labelSelector", [""])[0])
            if method == "GET":
                return self._get(resource, namespace, name)
            if method == "POST" and name is None:
                return self._create(resource, namespace, json.loads(body))
            if method == "PUT" and name is not None:
                return self._replace(resource, namespace, name, json.loads(body))
            if method == "DELETE" and name is not None:
                return self._delete(resource, namespace, name)
        return 405, _status(405, "MethodNotAllowed", f"{method} {resource} is not supported")

    def _get(self, resource: str, namespace: str, name: str) -> tuple[int, Any]:
        obj = self.objects.get((resource, namespace, name))
        if obj is None:
            return 404, _status(404, "NotFound", f'{resource} "{name}" not found', name, resource)
        script = self._scripts.get((namespace, name)) if resource == "rayjobs" else None
        if script:
            obj["status"] = script.pop(0) if len(script) > 1 else script[0]
        return 200, obj

    def _list(self, resource: str, namespace: str, selector: str) -> dict[str, Any]:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        items = [
            obj
            for (res, ns, _), obj in sorted(self.objects.items())
            if res == resource
            and ns == namespace
            and wanted.items() <= obj["metadata"].get("labels", {}).items()
        ]
        kind = {
            "rayjobs": "RayJobList",
            "configmaps": "ConfigMapList",
            "pods": "PodList",
            "serviceaccounts": "ServiceAccountList",
            "persistentvolumeclaims": "PersistentVolumeClaimList",
            "networkpolicies": "NetworkPolicyList",
            "events": "EventList",
        }[resource]
        return {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }

    def _create(self, resource: str, namespace: str, obj: dict[str, Any]) -> tuple[int, Any]:
        name = obj.get("metadata", {}).get("name", "")
        invalid = _invalid(resource, obj)
        if invalid:
            return 422, _status(
                422,
                "Invalid",
                f'{obj.get("kind")}.{resource} "{name}" is invalid: {invalid}',
                name,
                resource,
            )
        if (resource, namespace, name) in self.objects:
            return 409, _status(
                409, "AlreadyExists", f'{resource} "{name}" already exists', name, resource
            )
        self._uid += 1
        obj["metadata"].update(
            uid=f"uid-{self._uid}",
            resourceVersion=str(self._uid),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.objects[(resource, namespace, name)] = obj
        return 201, obj

    def _replace(
        self, resource: str, namespace: str, name: str, obj: dict[str, Any]
    ) -> tuple[int, Any]:
        if (resource, namespace, name) not in self.objects:
            return 404, _status(404, "NotFound", f'{resource} "{name}" not found', name, resource)
        self.objects[(resource, namespace, name)] = obj
        return 200, obj

    def _delete(self, resource: str, namespace: str, name: str) -> tuple[int, Any]:
        if self.objects.pop((resource, namespace, name), None) is None:
            return 404, _status(404, "NotFound", f'{resource} "{name}" not found', name, resource)
        return 200, _status(200, "", "", name, resource, status="Success")

    def _pod_log(self, namespace: str, name: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if ("pods", namespace, name) not in self.objects:
            return 404, _status(404, "NotFound", f'pods "{name}" not found', name, "pods")
        text = self.logs[(namespace, name)]
        tail = query.get("tailLines")
        if tail:
            text = "".join(text.splitlines(keepends=True)[-int(tail[0]) :])
        return 200, text


def _invalid(resource: str, obj: dict[str, Any]) -> str:
    """The checks that make a real API server answer 422: name syntax, and for RayJobs the CRD's."""
    name = obj.get("metadata", {}).get("name", "")
    if not _NAME.match(name) or len(name) > 253:
        return f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of ..."
    if resource == "rayjobs" and not isinstance(obj.get("spec", {}).get("entrypoint", ""), str):
        return "spec.entrypoint: Invalid value: must be a string"
    return ""


def _status(
    code: int, reason: str, message: str, name: str = "", kind: str = "", status: str = "Failure"
) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": status,
        "message": message,
        "reason": reason,
        "details": {"name": name, "kind": kind},
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    double: KubeApiDouble

    def _respond(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        code, payload, headers = self.double.handle(
            self.command, self.path, self.rfile.read(length)
        )
        text = payload if isinstance(payload, str) else json.dumps(payload)
        data = text.encode()
        self.send_response(code)
        self.send_header(
            "Content-Type", "text/plain" if isinstance(payload, str) else "application/json"
        )
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _respond

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        return


class _Listener:
    """The double's HTTP server thread, stoppable and restartable on the same port."""

    def __init__(self, double: KubeApiDouble) -> None:
        self._handler = type("Handler", (_Handler,), {"double": double})
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        self._server = server

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = self._thread = None


@contextmanager
def serve() -> Iterator[tuple[KubeApiDouble, str]]:
    """Run the double on a free port; yields it and its base URL."""
    double = KubeApiDouble()
    listener = _Listener(double)
    listener.start()
    double.down, double.up = listener.stop, listener.start
    try:
        yield double, f"http://127.0.0.1:{listener.port}"
    finally:
        listener.stop()
