"""Shared fixtures: the KubeRay CRDs from ../shared (skipped when absent) and chart rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy._schemas import ObjectValidator

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / ".." / "shared" / "crds"


@pytest.fixture(scope="session")
def validator() -> ObjectValidator:
    """Validates RayJob/RayCluster against the KubeRay CRDs and core kinds against k8s schemas."""
    if not (CRD_DIR / "ray.io_rayjobs.yaml").exists():
        pytest.skip(f"KubeRay CRDs not found at {CRD_DIR.resolve()} (../shared is absent)")
    return ObjectValidator(CRD_DIR)
