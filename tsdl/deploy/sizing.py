"""Kubernetes quantities as numbers, and the Ray object store / `/dev/shm` sizes derived from them.

Ray puts its object store in `/dev/shm` only when the store fits there; otherwise it falls back to
disk (`/tmp`) with a "this will harm performance" warning. So tsdl fixes the store size
explicitly (`object-store-memory`, by default Ray's own 30% of the pod's memory) and sizes each
pod's memory-backed `/dev/shm` from it. `helm/tsdl/templates/_helpers.tpl` computes the same
numbers (`tsdl.bytes`, `tsdl.objectStore`, `tsdl.shm`); a test keeps the two in agreement.
"""

from __future__ import annotations

import math
import re

from tsdl.errors import DeployError

__all__ = [
    "OBJECT_STORE_FRACTION",
    "SHM_HEADROOM",
    "check_shm",
    "object_store_bytes",
    "parse_quantity",
    "shm_limit",
]

OBJECT_STORE_FRACTION = 0.3
"""Share of a pod's memory Ray gives its object store by default (ray._private.utils)."""
SHM_HEADROOM = 1.1
"""`/dev/shm` = object store x this: Ray wants the store within 95% of shm, plus room for
data-loader shared memory."""
_MI = 1024**2
_FACTORS = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "Ei": 1024**6,
}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(quantity: str | int | float) -> float:
    """`"16Gi"` -> 17179869184.0, `"500m"` -> 0.5.

    Raises:
        DeployError: not a Kubernetes quantity in the forms tsdl accepts.
    """
    match = _QUANTITY.match(str(quantity))
    if match is None or match.group(2) not in _FACTORS:
        raise DeployError(
            f"{quantity!r} is not a Kubernetes quantity", hint="write e.g. 500m, 4, 16Gi"
        )
    return float(match.group(1)) * _FACTORS[match.group(2)]


def object_store_bytes(memory: str, ray_start_params: dict[str, str]) -> int:
    """The object store of a pod: `object-store-memory` if given, else 30% of its memory."""
    given = ray_start_params.get("object-store-memory")
    if given is not None:
        return int(float(given))
    return math.floor(parse_quantity(memory) * OBJECT_STORE_FRACTION)


def shm_limit(store_bytes: int) -> str:
    """The `/dev/shm` size that holds `store_bytes` with headroom, in whole MiB (e.g. "2704Mi")."""
    return f"{math.ceil(store_bytes * SHM_HEADROOM / _MI)}Mi"


def check_shm(shm_size: str, store_bytes: int, where: str) -> None:
    """An explicit `/dev/shm` smaller than the object store would push the store to disk.

    Raises:
        DeployError: naming the pod group, both sizes and the fix.
    """
    if parse_quantity(shm_size) * 0.95 < store_bytes:
        raise DeployError(
            f"deploy.shm_size / {where}.shm_size {shm_size} is below the {where} Ray object store "
            f"({store_bytes / 1024**3:.1f}Gi), so Ray would spill it to disk",
            hint=f"unset deploy.shm_size (sized per pod), raise it to {shm_limit(store_bytes)}, "
            f"or set {where}.ray_start_params.object-store-memory",
        )
