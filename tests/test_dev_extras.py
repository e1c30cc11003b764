"""Missing dev tools fail CI instead of silently skipping the tests that need them."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from tests.conftest import REPO_ROOT, dev_extra_names, missing_dev_extras


def test_a_missing_extra_is_reported(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\n[project.optional-dependencies]\n'
        'dev = ["pytest>=8", "no-such-tsdl-test-package>=1; python_version>\'3\'", "ruff"]\n'
    )
    assert missing_dev_extras(pyproject) == ["no-such-tsdl-test-package"]


def test_no_test_skips_on_a_missing_dev_extra_tool() -> None:
    """Dev-extra tools are imported directly: `importorskip` would turn a broken dev install into
    silently skipped tests (it stays fine for other extras, e.g. `bench`)."""
    dev = {_normalized(name) for name in dev_extra_names()}
    owners = importlib.metadata.packages_distributions()
    skipped = []
    for path in sorted((REPO_ROOT / "tests").rglob("*.py")):
        for module in re.findall(r"importorskip\(\s*[\"']([\w.]+)", path.read_text()):
            top = module.split(".")[0]
            if any(_normalized(d) in dev for d in owners.get(top, [top])):
                skipped.append(f"{path.relative_to(REPO_ROOT)}: {module}")
    assert not skipped, f"import these directly: {skipped}"


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
