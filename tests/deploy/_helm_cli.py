"""The one step of `helm install -f a -f b --set ...` that lives in Helm's CLI, not its engine.

helm-python-sdk takes one values mapping; Helm's CLI builds it by merging the `-f` files and
`--set` expressions in order with `mergeMaps` (helm.sh/helm/v4 pkg/cli/values/options.go): maps
merge key by key, anything else (lists, scalars, null) from the right-most source wins.
"""

from __future__ import annotations

from typing import Any

__all__ = ["helm_cli_merge"]


def helm_cli_merge(*documents: dict[str, Any]) -> dict[str, Any]:
    """`helm install -f a -f b`: Helm's mergeMaps over the sources, in order."""
    out: dict[str, Any] = {}
    for document in documents:
        out = _merge_maps(out, document)
    return out


def _merge_maps(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_maps(out[key], value)
        else:
            out[key] = value
    return out
