"""Missing dev tools fail CI instead of silently skipping the tests that need them."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import missing_dev_extras


def test_a_missing_extra_is_reported(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n[project.optional-dependencies]\n'
        'dev = ["pytest>=8", "no-such-tsdl-test-package>=1; python_version>\'3\'", "ruff"]\n'
    )
    assert missing_dev_extras(pyproject) == ["no-such-tsdl-test-package"]
