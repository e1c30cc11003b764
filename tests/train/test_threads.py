"""Torch's thread count comes from the config, and unset counts the CPUs the container may use."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.conftest import small_config
from tsdl import api
from tsdl.train import threads
from tsdl.train.threads import available_cpus, cgroup_cpu_limit, torch_threads


def _write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text + "\n")


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "200000 100000"}, 2),  # docker --cpus=2, cgroup v2
        ({"cpu.max": "150000 100000"}, 2),  # 1.5 CPUs: rounded up
        ({"cpu.max": "max 100000"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, 3),  # cgroup v1
        ({"cpu,cpuacct/cpu.cfs_quota_us": "50000", "cpu,cpuacct/cpu.cfs_period_us": "100000"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
        ({}, None),
    ],
)
def test_the_cgroup_quota_is_read_from_v1_and_v2(tmp_path: Path, files: dict, limit: int | None) -> None:
    for name, text in files.items():
        _write(tmp_path, name, text)
    assert cgroup_cpu_limit(tmp_path) == limit


def test_a_container_limited_to_2_cpus_gets_2_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "cpu.max", "200000 100000")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert available_cpus(tmp_path) == 2
    assert available_cpus(tmp_path / "no-cgroup") == 64


def test_the_configured_count_wins_everywhere(tmp_path: Path) -> None:
    config = small_config(tmp_path, resources__torch_threads=3, resources__cpus_per_worker=2)
    assert torch_threads(config, in_process=True) == torch_threads(config, in_process=False) == 3
    assert torch_threads(small_config(tmp_path, resources__cpus_per_worker=2), in_process=False) == 2


def test_a_run_stores_its_count_and_reproduce_restores_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: 5)
    resolved = api._with_torch_threads(small_config(tmp_path), None)
    assert resolved.resources.torch_threads == 5  # stored in the run's config and manifest
    from tsdl.tracking import build_manifest

    manifest = build_manifest(config=resolved, data_hash="0" * 64, split_boundaries={}, scaler_state={})
    assert manifest["torch_threads"] == 5

    # --reproduce on another machine: the recorded count, not this host's.
    monkeypatch.setattr(threads, "available_cpus", lambda: 64)
    original = small_config(tmp_path)  # an older config without the field, its manifest with it
    monkeypatch.setattr("tsdl.tracking.load_run", lambda run_id, uri: (original, {"torch_threads": 5}, {}))
    trained: list = []

    def train(config, **kwargs):
        trained.append(api._with_torch_threads(config, kwargs.get("address")))
        raise SystemExit

    monkeypatch.setattr(api, "train", train)
    with pytest.raises(SystemExit):
        api.reproduce("run-1", tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    assert trained[0].resources.torch_threads == 5
