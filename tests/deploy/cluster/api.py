"""A small client of the e2e cluster's API server (JSON over HTTPS with a bearer token).

The control-plane bootstrap and the scenarios need a handful of calls, raw (status subresources,
merge patches); the `kubernetes` package would be the same requests with more ceremony.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ApiError(RuntimeError):
    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status}: {body[:300]}")
        self.status = status


@dataclass
class Api:
    server: str
    token: str
    ca_file: Path

    def __post_init__(self) -> None:
        self._ctx = ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        url = self.server + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(
                exc.code, exc.read().decode(errors="replace"), f"{method} {path}"
            ) from None
        return json.loads(raw) if raw else None

    def healthy(self, path: str = "/readyz") -> bool:
        req = urllib.request.Request(self.server + path)
        req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params or None)

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: Any = None) -> Any:
        try:
            return self.request("DELETE", path, body)
        except ApiError as exc:
            if exc.status != 404:
                raise
            return None

    def apply(self, path: str, body: Any, manager: str = "tsdl-e2e") -> Any:
        """Server-side apply (creates or updates), strict field validation."""
        return self.request(
            "PATCH",
            path,
            body,
            params={"fieldManager": manager, "force": "true", "fieldValidation": "Strict"},
            content_type="application/apply-patch+yaml",
        )
