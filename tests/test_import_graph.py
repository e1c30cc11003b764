"""Data flows one way: config -> data -> models/losses -> train -> tune -> tracking/deploy.

No module may import a later stage (function-level imports included, ``from tsdl import X``
resolved to ``tsdl.X``). `api` and `cli` are the shell around the stages: they may import any
stage, and no stage may import them. `ray_connection` (starting Ray) is used by train and tune. On
top of the stage order, no two modules may import each other, directly or through others
(imports under ``if TYPE_CHECKING:`` do not count: they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tsdl"

STAGE = {
    "errors": 0,
    "interrupts": 0,
    "ray_connection": 3,
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
SHELL = {"api", "cli", "__init__", "__main__"}
SHELL_STAGE = 99


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "tsdl" and len(parts) > 1 else None


def _stage(top: str) -> int:
    return SHELL_STAGE if top in SHELL else STAGE.get(top, SHELL_STAGE)


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports; ``from tsdl.x import y`` yields ``tsdl.x``, and ``tsdl.x.y``
    when ``y`` is a module."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for block in ast.walk(tree) if _is_type_checking(block) for n in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names if _is_module(f"{node.module}.{alias.name}")]
    return found


def _is_module(name: str) -> bool:
    """``tsdl.x.y`` names a module or package (not a function or constant such as ``__version__``)."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_later_stage(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    owner = rel.parts[0].removesuffix(".py")
    if owner in SHELL:
        return
    assert owner in STAGE, f"tsdl/{rel}: add its package '{owner}' to STAGE in this test"
    later = sorted(
        {
            name
            for name in _imports(path)
            if (top := _top(name)) is not None and _stage(top) > STAGE[owner] and top != owner
        }
    )
    assert not later, f"tsdl/{rel} (stage {owner}) imports later stages or the shell: {later}"


def test_from_tsdl_import_resolves_to_the_module() -> None:
    tree = "from tsdl import api\nfrom tsdl.tune import study\n"
    probe = PACKAGE.parent / "tests" / "_probe_import_graph.py"
    probe.write_text(tree)
    try:
        found = _imports(probe)
    finally:
        probe.unlink()
    assert "tsdl.api" in found and "tsdl.tune.study" in found
    assert _stage(_top("tsdl.api")) > STAGE["tune"]


def test_no_import_cycles_between_modules() -> None:
    modules = {_module_name(p): p for p in _modules()}
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name and not _is_package_of(m, name)}
        for name, path in modules.items()
    }
    cycles = _cycles(graph)
    assert not cycles, "import cycles (break them by moving the shared part down): " + "; ".join(
        " -> ".join([*c, c[0]]) for c in cycles
    )


def _is_package_of(package: str, module: str) -> bool:
    """A module importing its own package's ``__init__`` (re-exports) is not a cycle we police."""
    return module.startswith(package + ".")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found
