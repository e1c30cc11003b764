"""One Kubernetes API call as tsdl makes it: a failure becomes a one-line DeployError, and a read
waits out a flaky API server (5xx, 429, a dropped connection) so that a day-long
`tsdl submit --wait` survives an API server restart or a load balancer's hiccup.

Only reads (get, list, pod logs) are retried: repeating them changes nothing. Creates, replaces
and deletes are tried once, because a lost answer does not tell whether they happened. A
connection failure before this client has had any answer from the server is not retried either:
that is a wrong address in the kubeconfig or a cluster that is down, and the user should hear it
at once rather than after two minutes.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tsdl.errors import DeployError

__all__ = ["Allowed", "ApiCalls", "RetryPolicy", "transport_retries"]

# Read timeouts: (connect, between bytes) seconds. A half-open connection would otherwise hang a
# `--wait` forever; a timeout is a transient failure and is retried like a reset.
READ_TIMEOUT = (15.0, 60.0)


def transport_retries() -> Any:
    """urllib3's own retries for tsdl's ApiClient: three immediate ones for a connection that
    could not be opened or dropped a read, and none on an HTTP status. urllib3's default would
    also sleep out any Retry-After of a 429 or 503 itself, unbounded and with a warning each
    time; `RetryPolicy` does that within its budget and says so in one line."""
    from urllib3.util.retry import Retry

    return Retry(total=3, respect_retry_after_header=False, raise_on_status=False)


@dataclass(frozen=True)
class RetryPolicy:
    """How a read waits out transient failures: capped exponential backoff with jitter.

    The n-th retry waits `first_delay_s * 2**(n-1)` seconds, capped at `max_delay_s` and scaled by
    a random factor in [0.5, 1] (so clients that failed together do not retry together), or the
    server's Retry-After. A call gives up after `attempts` tries or once the next wait would end
    more than `budget_s` seconds after its first try. `sleep`, `clock` and `jitter` are there so
    tests need not wait.
    """

    attempts: int = 6
    first_delay_s: float = 4.0
    max_delay_s: float = 60.0
    budget_s: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        if retry_after is not None:
            return retry_after
        backoff = min(self.max_delay_s, self.first_delay_s * 2 ** (retry - 1))
        return backoff * (0.5 + 0.5 * self.jitter())


@dataclass(frozen=True)
class Allowed:
    """What a call returns for an HTTP error status the caller allowed (e.g. 404 on a read)."""

    status: int


class ApiCalls:
    """Runs API calls for one client; remembers whether the server has ever answered it."""

    def __init__(self, retry: RetryPolicy, notify: Callable[[str], None]) -> None:
        """Args:
        retry: how reads wait out transient failures.
        notify: told one line before each wait ("... retrying in 8 s (attempt 2 of 6)").
        """
        self.retry = retry
        self._notify = notify
        self._reached = False

    def write(
        self,
        action: str,
        method: Callable[..., Any],
        *args: Any,
        allow: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> Any:
        """One try of a create, replace or delete; statuses in `allow` return `Allowed`."""
        return self._run(action, method, args, kwargs, allow=allow, retry=False)

    def read(
        self,
        action: str,
        method: Callable[..., Any],
        *args: Any,
        allow: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> Any:
        """A get, list or log read, retried on transient failures (see `RetryPolicy`)."""
        kwargs.setdefault("_request_timeout", READ_TIMEOUT)
        return self._run(action, method, args, kwargs, allow=allow, retry=True)

    def _run(
        self,
        action: str,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        allow: tuple[int, ...],
        retry: bool,
    ) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        policy = self.retry
        start = policy.clock()
        attempt = 1
        while True:
            try:
                result = method(*args, **kwargs)
            except ApiException as exc:
                self._reached = True
                if exc.status in allow:
                    return Allowed(exc.status)
                error: Exception = exc
            except HTTPError as exc:
                error = exc
            else:
                self._reached = True
                return result
            wait = self._wait(error, attempt, start) if retry else None
            if wait is None:
                gave_up = None if attempt == 1 else (attempt, policy.clock() - start)
                raise api_error(error, action, gave_up=gave_up) from None
            attempt += 1
            self._notify(
                f"{action}: {_failure(error)}; retrying in {wait:.0f} s "
                f"(attempt {attempt} of {policy.attempts})"
            )
            policy.sleep(wait)

    def _wait(self, error: Exception, attempt: int, start: float) -> float | None:
        """Seconds to wait before trying again, or None to give up now."""
        code = _status_code(error)
        if code is None:
            transient = self._reached
        else:
            transient = code in (408, 429) or (code >= 500 and code != 501)
        if not transient or attempt >= self.retry.attempts:
            return None
        wait = self.retry.delay(attempt, _retry_after(error))
        if self.retry.clock() - start + wait > self.retry.budget_s:
            return None
        return wait


def _retry_after(error: Exception) -> float | None:
    """The Retry-After header of an HTTP answer in seconds (delta-seconds or an HTTP date)."""
    headers = getattr(error, "headers", None) or {}
    value = str(headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _status_code(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def _failure(error: Exception) -> str:
    """A short name for a transient failure, for the retry notice."""
    code = _status_code(error)
    if code is None:
        return (
            f"cannot reach the Kubernetes API ({_short(getattr(error, 'reason', None) or error)})"
        )
    return f"HTTP {code} {getattr(error, 'reason', '') or ''}".rstrip()


def api_error(
    exc: Exception, action: str, *, gave_up: tuple[int, float] | None = None
) -> DeployError:
    """An ApiException (or a connection failure) as one line: what, HTTP status, server message,
    and after retries how many tries over how long."""
    after = f" (gave up after {gave_up[0]} tries in {gave_up[1]:.0f} s)" if gave_up else ""
    code = _status_code(exc)
    if code is None:
        # urllib3's MaxRetryError wraps the real reason (connection refused, DNS, TLS) in .reason
        reason = getattr(exc, "reason", None) or exc
        pool = vars(exc).get("pool") or vars(exc).get("conn")
        at = f" at {pool.host}:{pool.port}" if getattr(pool, "host", None) else ""
        return DeployError(
            f"{action}: cannot reach the Kubernetes API{at} ({_short(reason)}){after}",
            hint="check the cluster address in your kubeconfig and that the cluster is up",
        )
    body = _status_body(exc)
    message = " ".join((body.get("message") or getattr(exc, "reason", "") or "").split())
    return DeployError(f"{action}: HTTP {code}: {message}{after}", hint=_hint(code, body))


def _status_body(exc: Exception) -> dict[str, Any]:
    """The API server's `Status` object, or {} when the body is something else (e.g. a
    "404 page not found" for an API group the server does not serve)."""
    try:
        body = json.loads(getattr(exc, "body", "") or "{}")
    except (ValueError, TypeError):
        return {}
    return body if isinstance(body, dict) else {}


def _hint(code: int, body: dict[str, Any]) -> str:
    """The fix for an HTTP error; a 404 says which of namespace, object or resource type is missing."""
    if code == 404:
        details = body.get("details") or {}
        if details.get("kind") == "namespaces":
            namespace = details.get("name") or "NAMESPACE"
            return (
                f"namespace {namespace} does not exist: check -n / deploy.namespace "
                "(`kubectl get namespaces`), or create it with its prerequisites: "
                f"helm install tsdl helm/tsdl -n {namespace} --create-namespace --set job.enabled=false"
            )
        if details.get("name"):
            return "check the name and namespace (`tsdl status -n NAMESPACE` lists tsdl jobs)"
        return (
            "the API server does not serve this resource: is the KubeRay operator (its CRDs) "
            "installed? (`kubectl get crd rayjobs.ray.io`)"
        )
    hints = {
        401: "refresh your cluster credentials",
        403: "your user lacks that RBAC permission in this namespace; the platform team grants "
        "it by binding the `<release>-submitter` Role of the namespace's prerequisites "
        "(helm value rbac.submitters; docs/deploy.md, For platform teams)",
        409: "cancel the existing one (`tsdl cancel NAME`) or set deploy.name to a new name",
        422: "the API server rejected the object; fix the field named in the message",
        429: "the API server is overloaded; retry in a minute",
    }
    if code >= 500:
        return "the Kubernetes API server is failing; retry later, or ask your cluster admins"
    return hints.get(code, "see the message")


def _short(reason: object) -> str:
    """The last, most specific part of a urllib3 error ("[Errno 111] Connection refused")."""
    text = " ".join(str(reason).split())
    return text.rsplit(": ", 1)[-1].strip("\"')") if "Errno" in text else text[:200]
