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


@pytest.mark.parametrize("namespace", ["0123", "2024", "yes", "null"])
def test_flag_values_are_not_typed_by_yaml(namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 23: `-n 2024` was refused and `-n 0123` became 83 (flags went through YAML)."""
    config = tmp_path / "c.yaml"
    config.write_text("deploy:\n  worker: {gpu: 0}\n")
    assert main(["render", "-c", str(config), "-n", namespace]) == 0, capsys.readouterr().err
    assert f"namespace: '{namespace}'" in capsys.readouterr().out


def test_check_data_reads_the_file_it_is_given_whatever_its_name(tmp_path: Path, monkeypatch, capsys) -> None:
    """`tsdl check-data '#x.csv'` checked the built-in synthetic data and passed (YAML read the
    name as a comment, so data.path was null)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "#x.csv").write_text("ds,y\n2020-01-01,1\n")
    assert main(["check-data", "#x.csv"]) == 1
    assert "checklist failed" in capsys.readouterr().out
