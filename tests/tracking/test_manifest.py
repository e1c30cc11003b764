"""Reproducibility manifest fields, content hashing and metric comparison."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdl.config import config_hash, parse_config
from tsdl.tracking import build_manifest, compare_metrics, file_content_hash


def test_manifest_records_seed_data_splits_scaler_versions_and_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TSDL_IMAGE_DIGEST", "sha256:abc")
    config = parse_config({"training": {"seed": 7, "compile": True, "optimizer": {"implementation": "foreach"}}})
    splits = {"train": {"start": pd.Timestamp("2020-01-01"), "end": pd.Timestamp("2020-06-30")}}
    manifest = build_manifest(
        config=config,
        data_hash="sha256:00",
        split_boundaries=splits,
        scaler_state={"kind": "standard", "mean": np.array([1.5, 2.0]), "n": np.int64(3)},
    )
    assert manifest["seed"] == 7
    assert (manifest["optimizer_implementation"], manifest["compile"]) == ("foreach", True)
    assert manifest["data_hash"] == "sha256:00"
    assert manifest["config_hash"] == config_hash(config)
    assert manifest["split_boundaries"] == {
        "train": {"start": "2020-01-01T00:00:00", "end": "2020-06-30T00:00:00"}
    }
    assert manifest["scaler_state"] == {"kind": "standard", "mean": [1.5, 2.0], "n": 3}
    assert manifest["image_digest"] == "sha256:abc"
    # The distribution's version: a CUDA wheel says 2.13.0 there, 2.13.0+cu130 in torch.__version__.
    assert manifest["package_versions"]["torch"] == importlib.metadata.version("torch")
    assert json.loads(json.dumps(manifest)) == manifest  # plain JSON all the way down

    monkeypatch.delenv("TSDL_IMAGE_DIGEST")
    assert (
        build_manifest(config=config, data_hash="x", split_boundaries={}, scaler_state={})[
            "image_digest"
        ]
        is None
    )


def test_file_content_hash_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"ds,y\n1,2\n" * 1000)
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_content_hash(path, chunk_bytes=7) == f"sha256:{expected}"


def test_compare_metrics_within_and_beyond_tolerance() -> None:
    match, table = compare_metrics({"MAE": 1.0, "RMSE": 2.0}, {"MAE": 1.0 + 1e-9, "RMSE": 2.0})
    assert match
    assert table.splitlines()[-1] == "metrics match (rtol=1e-06, 2 metrics)"

    match, table = compare_metrics({"MAE": 1.0, "RMSE": 2.0}, {"MAE": 1.1, "RMSE": 2.0}, rtol=1e-3)
    assert not match
    mae_row = next(line for line in table.splitlines() if line.startswith("MAE"))
    assert mae_row.split() == ["MAE", "1", "1.1", "0.0909091", "DIFF"]


def test_compare_metrics_missing_and_nan() -> None:
    match, table = compare_metrics({"MAE": 1.0, "x": float("nan")}, {"x": float("nan"), "y": 0.0})
    assert not match
    rows = {line.split()[0]: line.split()[-1] for line in table.splitlines()[1:-1]}
    assert rows == {"MAE": "DIFF", "x": "ok", "y": "DIFF"}
