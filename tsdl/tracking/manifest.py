"""The reproducibility manifest: everything needed to rerun a run and check it gave the same numbers.

``tsdl train --reproduce RUN_ID`` reads the manifest and config of a run, trains again and
compares the test metrics with ``compare_metrics``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsdl.config.loader import config_hash
from tsdl.config.root import TsdlConfig
from tsdl.tracking.system import git_commit, package_versions

__all__ = [
    "IMAGE_DIGEST_ENV",
    "MANIFEST_ARTIFACT",
    "MANIFEST_SCHEMA_VERSION",
    "build_manifest",
    "compare_metrics",
    "file_content_hash",
    "to_jsonable",
]

IMAGE_DIGEST_ENV = "TSDL_IMAGE_DIGEST"
"""Environment variable carrying the container image digest (set by the Helm chart / RayJob)."""
MANIFEST_SCHEMA_VERSION = 1
MANIFEST_ARTIFACT = "manifest.json"


def build_manifest(
    *,
    config: TsdlConfig,
    data_hash: str,
    split_boundaries: Mapping[str, Any],
    scaler_state: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``manifest.json`` of a run; plain JSON types only.

    Args:
        config: the resolved config (its hash and seed are recorded).
        data_hash: content hash of the input data (e.g. ``file_content_hash(path)``).
        split_boundaries: per split, its first/last timestamps (or rows), e.g.
            ``{"train": {"start": ..., "end": ...}, "val": ..., "test": ...}``.
        scaler_state: fitted scaler parameters (numpy arrays are converted to lists).

    Returns:
        seed, torch_threads, optimizer_implementation (AdamW's kernel, ``auto`` resolved by the run),
        compile (``training.compile``), data_hash, split_boundaries, scaler_state, config_hash, package_versions, python,
        git_commit, image_digest (None outside a container that sets $TSDL_IMAGE_DIGEST), created_at.
    """
    return {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seed": config.training.seed,
        "torch_threads": config.resources.torch_threads,
        "optimizer_implementation": config.training.optimizer.implementation,
        "compile": config.training.compile,
        "data_hash": data_hash,
        "split_boundaries": to_jsonable(split_boundaries),
        "scaler_state": to_jsonable(scaler_state),
        "config_hash": config_hash(config),
        "package_versions": package_versions(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "image_digest": os.environ.get(IMAGE_DIGEST_ENV) or None,
    }


def file_content_hash(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """``sha256:<hex>`` of a file's bytes, read in chunks (data files can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def compare_metrics(
    a: Mapping[str, float], b: Mapping[str, float], *, rtol: float = 1e-6
) -> tuple[bool, str]:
    """Do two runs' metrics agree within ``rtol``? Returns the verdict and a table explaining it.

    A metric present in only one run is a mismatch; NaN matches only NaN. The relative
    difference is ``|a - b| / max(|a|, |b|)`` (0 when both are 0).

    Args:
        a: metrics of the original run.
        b: metrics of the reproduction.
        rtol: largest accepted relative difference.

    Returns:
        ``(match, table)`` with one row per metric: original, reproduced, rel. diff, ok/DIFF.
    """
    if rtol < 0:
        raise ValueError(f"rtol must be >= 0, but got {rtol}")
    rows = [("metric", "original", "reproduced", "rel_diff", "")]
    match = True
    for name in sorted(set(a) | set(b)):
        left, right = a.get(name), b.get(name)
        diff = _rel_diff(left, right)
        ok = diff is not None and diff <= rtol
        match &= ok
        rows.append((name, _fmt(left), _fmt(right), _fmt(diff), "ok" if ok else "DIFF"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(
            [row[0].ljust(widths[0])]
            + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        ).rstrip()
        for row in rows
    ]
    verdict = "metrics match" if match else "metrics differ"
    lines.append(f"{verdict} (rtol={rtol:g}, {len(rows) - 1} metrics)")
    return match, "\n".join(lines)


def to_jsonable(value: Any) -> Any:
    """numpy arrays/scalars, paths and datetimes -> plain JSON types, recursively."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_jsonable(value.tolist())
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas.Timestamp
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def _rel_diff(left: float | None, right: float | None) -> float | None:
    if left is None or right is None:
        return None
    if math.isnan(left) or math.isnan(right):
        return 0.0 if math.isnan(left) and math.isnan(right) else None
    if left == right:
        return 0.0
    return abs(left - right) / max(abs(left), abs(right))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
