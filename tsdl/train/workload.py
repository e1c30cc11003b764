"""What a run or study computes, as a hash: resuming under a reused name is safe only when it matches.

A RayJob's entrypoint always passes ``--resume-if-exists`` with a name derived from the job, so
`helm install` of the same release or `tsdl submit` twice lands on the stored run or study. Without
this check the stored config silently wins and the user gets the old results labelled SUCCEEDED.
Where results are written, where runs are tracked and how pods are shaped do not change what is
computed, so they are left out (the same job may see another tracking URI on a retry).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from tsdl.config import TsdlConfig, to_flat_dict

__all__ = ["IGNORED", "workload_diff", "workload_hash"]

IGNORED = ("deploy.", "tracking.", "resources.address", "resources.storage_path")
"""Dotted-key prefixes that do not change what a run computes."""


def _workload(config: TsdlConfig | dict[str, Any], ignore: Iterable[str]) -> dict[str, Any]:
    if isinstance(config, dict):
        config = TsdlConfig.model_validate(config)
    skip = tuple(IGNORED) + tuple(ignore)
    return {k: v for k, v in to_flat_dict(config).items() if not k.startswith(skip)}


def workload_hash(config: TsdlConfig | dict[str, Any], *, ignore: Iterable[str] = (), extra: str = "") -> str:
    """sha256 of the config's workload keys (canonical JSON), plus ``extra`` (e.g. a study's budget)."""
    canonical = json.dumps(_workload(config, ignore), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((canonical + "\n" + extra).encode()).hexdigest()


def workload_diff(
    stored: TsdlConfig | dict[str, Any], new: TsdlConfig | dict[str, Any], *, ignore: Iterable[str] = (), limit: int = 4
) -> str:
    """``key: old -> new`` for the first ``limit`` workload keys that differ, on one line."""
    old, cur = _workload(stored, ignore), _workload(new, ignore)
    keys = sorted(k for k in old.keys() | cur.keys() if old.get(k) != cur.get(k))
    parts = [f"{k}: {_short(old.get(k))} -> {_short(cur.get(k))}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if value is not None else "unset"
    return text if len(text) <= 40 else text[:37] + "..."
