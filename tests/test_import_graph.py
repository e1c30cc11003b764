"""Data flows one way: config -> data -> models/losses -> train -> tune -> tracking/deploy.

No module may import a later stage (function-level imports included). `api`, `cli` and
`runtime` are the shell around the stages and may import any of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tsdl"

STAGE = {
    "errors": 0,
    "config": 0,
    "storage": 0,
    "data": 1,
    "models": 2,
    "losses": 2,
    "evaluation": 2,
    "train": 3,
    "tune": 4,
    "tracking": 5,
    "doctor": 5,
    "deploy": 5,
}
SHELL = {"api", "cli", "runtime", "__init__", "__main__"}


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "tsdl" and len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_later_stage(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    owner = rel.parts[0].removesuffix(".py")
    if owner in SHELL:
        return
    assert owner in STAGE, f"tsdl/{rel}: add its package '{owner}' to STAGE in this test"
    later = [
        name
        for name in _imports(path)
        if (top := _top(name)) is not None and top not in SHELL and STAGE.get(top, 99) > STAGE[owner]
    ]
    assert not later, f"tsdl/{rel} (stage {owner}) imports later stages: {later}"
