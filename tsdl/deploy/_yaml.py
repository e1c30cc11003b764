"""YAML for manifests people read: multi-line strings (the mounted config.yaml) as `|` blocks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

__all__ = ["dump_manifests"]


class _ManifestDumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = (
        "|"
        if "\n" in value and not any(line != line.rstrip() for line in value.splitlines())
        else None
    )
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ManifestDumper.add_representer(str, _str)


def dump_manifests(objects: Iterable[dict[str, Any]]) -> str:
    """`---`-separated documents in the order given, keys in insertion order."""
    return yaml.dump_all(
        list(objects), Dumper=_ManifestDumper, sort_keys=False, explicit_start=True, width=100
    )
