"""Shared fixtures: one local Ray per test session (2 CPUs, like CI) and small configs."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tsdl.config import TsdlConfig, parse_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
ETTH1 = SHARED / "data" / "ETTh1.csv"

def default_sigint() -> None:
    """``preexec_fn`` for a child a test sends SIGINT: Ctrl-C's default action, as from a terminal.

    A run started in the background by a non-interactive shell (`make test &`, nohup, some CI
    runners) has SIGINT ignored, and children inherit that: the SIGINT tests would see a run that
    never stops instead of the interrupt they check."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def config_with(raw: dict[str, Any], **overrides: Any) -> TsdlConfig:
    """``raw`` validated as a config after ``a__b=value`` overrides of nested keys."""
    for dotted, value in overrides.items():
        cursor = raw
        *parents, leaf = dotted.split("__")
        for part in parents:
            cursor = cursor.setdefault(part, {})
        cursor[leaf] = value
    return parse_config(raw)


# Tests import the dev-extra tools they need (helm-python-sdk, moto, ...) directly, where they
# use them: a missing or broken one fails those tests instead of skipping them. In CI the whole
# extra is checked once at session start, so the run fails up front with the install command.
_CI_FLAG = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def dev_extra_names(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """Distribution names of the ``dev`` extra's requirements, as written there."""
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["dev"]
    return [re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0] for requirement in extras]


def missing_dev_extras(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """Requirements of the ``dev`` extra that are not installed in this environment."""
    missing = []
    for name in dev_extra_names(pyproject):
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def pytest_sessionstart(session: pytest.Session) -> None:
    if _CI_FLAG and (missing := missing_dev_extras()):
        raise pytest.UsageError(
            f"CI is set but the dev extra is incomplete (missing: {', '.join(missing)}); "
            "install it with `pip install -e .[dev]` (tests would be skipped, not run)"
        )


# --- Two xdist workers (`make test`): whole modules per worker, the slowest modules first ---
# scripts/run-tests.sh passes `--dist loadfile --no-loadscope-reorder`: a module's tests run on one
# worker, so a module-scoped set-up (a training run, a chart render) is built once, and modules are
# handed out one at a time in the order this hook leaves them. (`--dist loadgroup` would be finer,
# but with pytest 9.2 xdist 3.8 silently ignores xdist_group marks: pytest-xdist issue #1386.)

_SLOW_DEFAULT_S = 30.0  # `slow` without seconds=
_FAST_S = 1.0  # a rough cost for every unmarked test


def _cost_s(item: pytest.Item) -> float:
    mark = item.get_closest_marker("slow")
    return float(mark.kwargs.get("seconds", _SLOW_DEFAULT_S)) if mark else _FAST_S


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules in order of their summed ``slow(seconds=...)`` costs, longest first (a stable sort:
    tests keep their order inside a module). Workers take the next module as they free up, so the
    long end-to-end modules overlap with the many short ones instead of one of them starting last."""
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    ordered = sorted(modules.values(), key=lambda tests: -sum(_cost_s(item) for item in tests))
    items[:] = [item for tests in ordered for item in tests]


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


# --- An S3-compatible object store on 127.0.0.1 (moto's server), for object-store paths ---


class S3Store:
    """One fresh bucket on the local moto server; the AWS_* env points at it while a test runs."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        import boto3

        self.endpoint = endpoint
        self.bucket = bucket
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def put(self, key: str, data: bytes | str | Path) -> str:
        """Upload bytes, text or a local file; returns its s3:// URI."""
        body = data.read_bytes() if isinstance(data, Path) else data.encode() if isinstance(data, str) else data
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return self.uri(key)

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    @contextlib.contextmanager
    def auth_enforced(self) -> Iterator[None]:
        """Make the server check credentials (moto accepts any key by default), so the dummy keys
        are rejected as unknown, the way a real store rejects a wrong or revoked key."""
        import requests

        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        try:
            yield
        finally:
            requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's ThreadedMotoServer on a free 127.0.0.1 port, for the whole session."""
    from moto.server import ThreadedMotoServer  # the dev extra's moto[server]

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """A new bucket, with AWS_ENDPOINT_URL, dummy keys and AWS_REGION set in the environment."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "tsdl-test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "tsdl-test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = S3Store(s3_endpoint, f"tsdl-{uuid.uuid4().hex[:12]}")
    store.client.create_bucket(Bucket=store.bucket)
    return store
