"""The chart's presets as an installer uses them: with a storage choice where the preset leaves
it to the user (the multi-node preset asks for ReadWriteMany, whose StorageClass only the
cluster's admin knows; rendering it without one fails, see test_storage.py)."""

from __future__ import annotations

from typing import Any

import yaml

from tsdl.deploy.chart import CHART_DIR

RWX_CLASS = "efs-sc"


def load_preset(name: str) -> dict[str, Any]:
    """`helm/tsdl/ci/<name>` plus `storage.storageClassName` when the preset needs one."""
    values = yaml.safe_load((CHART_DIR / "ci" / name).read_text())
    storage = values.get("storage", {})
    if "ReadWriteMany" in storage.get("accessModes", []) and not storage.get("storageClassName"):
        values["storage"] = {**storage, "storageClassName": RWX_CLASS}
    return values
