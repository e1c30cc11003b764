"""Shared fixtures: one local Ray per test session (2 CPUs, like CI) and small configs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
ETTH1 = SHARED / "data" / "ETTh1.csv"

os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A local Ray with 2 CPUs for the whole session (re-used if a test module started one)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True)
    yield
    ray.shutdown()


@pytest.fixture
def etth1_path() -> Path:
    if not ETTH1.exists():
        pytest.skip(f"ETTh1 benchmark data not found at {ETTH1} (../shared is absent in a user's clone)")
    return ETTH1


@pytest.fixture
def etth1_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dataset cache ($TSDL_DATA_HOME) holding ETTh1, so `data.dataset: ETTh1` needs no network.

    The copy is verified against the pinned SHA-256 on use, like a fetched one.
    """
    import shutil

    if not ETTH1.exists():
        pytest.skip(f"ETTh1 benchmark data not found at {ETTH1} (../shared is absent in a user's clone)")
    home = tmp_path / "tsdl-datasets"
    home.mkdir()
    shutil.copyfile(ETTH1, home / "ETTh1.csv")
    monkeypatch.setenv("TSDL_DATA_HOME", str(home))
    return home
