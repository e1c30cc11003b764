"""`tsdl config` and the CLI's error contract (one line, exit code 2, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsdl.cli.main import main
from tsdl.config import TsdlConfig, load_config


def test_config_init_writes_a_loadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "config.yaml"
    assert main(["config", "init", "-o", str(out)]) == 0
    assert load_config(out) == TsdlConfig()
    assert main(["config", "init", "-o", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_config_show_resolves_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--set", "training.max_epochs=7"]) == 0
    assert "max_epochs: 7" in capsys.readouterr().out


def test_bad_config_is_one_line_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  stride: 0\n")
    assert main(["config", "show", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.startswith(f"error: {bad}:2: data.stride")
