"""A Tune trial sets what deterministic cuBLAS needs before any CUDA work of its actor."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from tsdl.tune.trial import run_trial


def test_a_trial_sets_the_cublas_workspace_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    # cuBLAS reads it at the actor's first cuBLAS call; a reused actor's earlier trial may have
    # been non-deterministic, so every trial sets it first, whatever its own settings.
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with pytest.raises(ValidationError):  # fails right after: nothing else of the trial runs
        run_trial({}, base={"no_such_section": 1}, plan=None, prepared={}, registry="", storage_path="")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
