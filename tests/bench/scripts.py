"""Importing a benchmark script in a test: the scripts run as ``python bench/<name>.py`` and import
their siblings (``_common``, ``bench_accuracy``) by bare name, so ``bench/`` is on ``sys.path``
while one loads, and only then."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_script(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (imported once per test session, as any module)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))
