"""`make test`'s runner: scripts/run-tests.sh on pytest-xdist workers, and the suite's scheduling
hook (tests/conftest.py): a module's shared set-up is built once, and the slowest modules go first. Each case runs pytest on a few generated test files, not on this suite."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

RUN_TESTS = REPO_ROOT / "scripts" / "run-tests.sh"

_CONFTEST = textwrap.dedent(
    """
    from tests.conftest import pytest_collection_modifyitems  # the suite's own ordering hook

    def pytest_configure(config):
        config.addinivalue_line("markers", "slow(seconds=30): long")
    """
)
_SHARED = textwrap.dedent(
    """
    import os, pytest

    @pytest.fixture(scope="module")
    def built():
        with open(os.environ["BUILT_LOG"], "a") as log:
            log.write("built\\n")

    def test_one(built):
        pass

    def test_two(built):
        pass
    """
)
_TIMED = textwrap.dedent(
    """
    import pytest

    def test_quick():
        pass

    @pytest.mark.slow(seconds=5)
    def test_medium():
        pass

    @pytest.mark.slow(seconds=50)
    def test_longest():
        pass
    """
)


def _run(tmp_path: Path, *args: str, workers: str = "2", files: dict[str, str] | None = None):
    for name, text in (files or {}).items():
        (tmp_path / name).write_text(text)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TSDL_TEST_WORKERS": workers,
           "BUILT_LOG": str(tmp_path / "built.log")}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        ["bash", str(RUN_TESTS), sys.executable, "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-c", os.devnull, *args, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def test_the_slowest_module_goes_first_and_a_modules_fixture_is_built_once_on_two_workers(tmp_path: Path) -> None:
    files = {"conftest.py": _CONFTEST, "test_shared.py": _SHARED, "test_timed.py": _TIMED}
    listed = _run(tmp_path, "--collect-only", "-q", workers="0", files=files)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    order = [line.split("::")[-1] for line in listed.stdout.splitlines() if "::" in line]
    assert order == ["test_quick", "test_medium", "test_longest", "test_one", "test_two"], order  # 56 s, 2 s

    ran = _run(tmp_path, "-v")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "2 workers" in ran.stdout and "5 passed" in ran.stdout, ran.stdout
    # Split across the workers, each would build the module's fixture again.
    assert (tmp_path / "built.log").read_text() == "built\n"


@pytest.mark.parametrize("workers", ["2", "0"])
def test_no_tests_collected_fails_with_or_without_workers(tmp_path: Path, workers: str) -> None:
    ran = _run(tmp_path, workers=workers, files={"test_empty.py": "def helper():\n    pass\n"})
    assert ran.returncode == 1 and "pytest collected no tests" in ran.stderr, (ran.returncode, ran.stderr)


def test_a_worker_count_that_is_not_a_number_is_one_line(tmp_path: Path) -> None:
    ran = _run(tmp_path, workers="two")
    assert ran.returncode == 2 and ran.stdout == "", ran
    assert ran.stderr.count("\n") == 1 and "TSDL_TEST_WORKERS=two" in ran.stderr, ran.stderr
