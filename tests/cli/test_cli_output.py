"""--verbose (anywhere on the command line) shows framework logs; without it they are hidden."""

from __future__ import annotations

import logging
import os

import pytest

from tsdl.cli.main import main
from tsdl.ray_connection import is_verbose

_ENV = ("TSDL_VERBOSE", "RAY_AIR_NEW_OUTPUT", "MLFLOW_LOGGING_LEVEL", "RAY_worker_maximum_startup_concurrency")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(logging.getLogger("mlflow"), "level", logging.NOTSET)


@pytest.mark.parametrize("argv", [["--verbose", "datasets", "list"], ["datasets", "list", "--verbose"]])
def test_verbose_before_or_after_the_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    assert is_verbose() and "RAY_AIR_NEW_OUTPUT" not in os.environ and "MLFLOW_LOGGING_LEVEL" not in os.environ
    assert "ETTh1" in capsys.readouterr().out


def test_default_hides_framework_noise(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "list"]) == 0
    assert not is_verbose()
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0"  # Tune's legacy engine: silent at verbose=0
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
    assert logging.getLogger("mlflow").level == logging.WARNING
