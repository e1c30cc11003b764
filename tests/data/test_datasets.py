"""Datasets by name: fetch from a local HTTP server, pinned SHA-256, nothing partial in the cache."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import get_args

import pytest

from tests._dataset_server import serve_datasets
from tsdl.cli.main import main
from tsdl.config import load_config, parse_config
from tsdl.config.data import DatasetName
from tsdl.data import prepare_data
from tsdl.data.datasets import DATASETS, cached_path, dataset_path, fetch_dataset
from tsdl.errors import ConfigError, DataError

from .conftest import ETTH1


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("TSDL_DATA_HOME", str(home))
    return home


@pytest.fixture
def etth1_bytes() -> bytes:
    if not ETTH1.exists():
        pytest.skip(f"ETTh1 not found at {ETTH1} (../shared is absent in a user's clone)")
    return ETTH1.read_bytes()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_registry_matches_the_config_names() -> None:
    assert set(DATASETS) == set(get_args(DatasetName))
    assert all(len(spec.sha256) == 64 for spec in DATASETS.values())


def test_fetch_verifies_caches_and_prints_license(
    cache: Path, etth1_bytes: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_datasets({"ETTh1.csv": etth1_bytes}) as server:
        monkeypatch.setenv("TSDL_DATASETS_URL", server.url)
        assert main(["datasets", "fetch", "ETTh1"]) == 0
        assert server.requests == ["ETTh1.csv"]
    out = capsys.readouterr().out
    assert f"ETTh1: {cache / 'ETTh1.csv'}" in out and "CC BY-ND 4.0" in out and "Informer" in out
    assert (cache / "ETTh1.csv").read_bytes() == etth1_bytes
    assert [p.name for p in cache.iterdir()] == ["ETTh1.csv"]
    # The server is gone: the verified copy in the cache is used, no network needed.
    assert dataset_path("ETTh1") == cache / "ETTh1.csv"
    assert main(["datasets", "list"]) == 0
    assert "ETTh1   h        17420  yes" in capsys.readouterr().out


def test_checksum_mismatch_keeps_nothing(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_datasets({"ETTh1.csv": b"date,OT\n2016-07-01 00:00:00,1.0\n"}) as server:
        monkeypatch.setenv("TSDL_DATASETS_URL", server.url)
        with pytest.raises(DataError, match=r"has sha256 .* but tsdl pins f18de3ad269cef59"):
            fetch_dataset("ETTh1")
        assert main(["datasets", "fetch", "ETTh1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ETTh1 from http://127.0.0.1") and "not kept" in err[0]
    assert not cache.exists() or list(cache.iterdir()) == []


def test_interrupted_download_keeps_nothing(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with serve_datasets({"ETTh2.csv": b"x" * 200_000}) as server:
        server.truncate = True
        monkeypatch.setenv("TSDL_DATASETS_URL", server.url)
        with pytest.raises(DataError, match=r"broke off after 100000 of 200000 bytes; nothing was kept"):
            fetch_dataset("ETTh2")
    assert list(cache.iterdir()) == []  # no ETTh2.csv, no .part file


def test_no_network_names_the_url_and_the_manual_fix(
    cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("TSDL_DATASETS_URL", url)
    assert main(["datasets", "fetch", "ETTm1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"error: cannot download ETTm1 from {url}/ETTm1.csv: [Errno 111] Connection refused "
        f"(fix: download it by hand: curl -fL -o {cache / 'ETTm1.csv'} {url}/ETTm1.csv)"
    ]
    assert list(cache.iterdir()) == []


def test_unknown_name_and_tampered_cache(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "fetch", "etth1"]) == 2
    assert "unknown dataset 'etth1'" in capsys.readouterr().err
    cache.mkdir()
    cached_path("ETTh1").write_text("date,OT\n")
    with pytest.raises(DataError, match=r"does not match its pinned sha256 .*--force"):
        dataset_path("ETTh1")


def test_config_names_a_dataset_and_fetches_on_first_use(
    cache: Path, etth1_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = {
        "data": {
            "dataset": "ETTh1", "layout": "wide", "time_col": "date", "series_cols": ["OT"],
            "input_chunk_length": 48, "output_chunk_length": 12,
        }
    }
    with serve_datasets({"ETTh1.csv": etth1_bytes}) as server:
        monkeypatch.setenv("TSDL_DATASETS_URL", server.url)
        prepared = prepare_data(parse_config(raw))
    assert prepared.stats()["n_series"] == 1 and prepared.stats()["n_timesteps"] == 17420
    assert (cache / "ETTh1.csv").exists()


def test_check_data_takes_a_dataset_name(
    cache: Path, etth1_bytes: bytes, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with serve_datasets({"ETTh1.csv": etth1_bytes}) as server:
        monkeypatch.setenv("TSDL_DATASETS_URL", server.url)
        assert main(["check-data", "ETTh1"]) == 0
    assert "checklist passed" in capsys.readouterr().out


def test_path_and_dataset_are_mutually_exclusive(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  path: x.csv\n  dataset: ETTh1\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "set either data.path" in info.value.message and "\n" not in info.value.one_line()
    with pytest.raises(ConfigError, match="'ETTh1', 'ETTh2', 'ETTm1' or 'ETTm2'"):
        parse_config({"data": {"dataset": "Weather"}})


def test_relative_data_path_starts_at_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "configs").mkdir()
    cfg = tmp_path / "configs" / "c.yaml"
    cfg.write_text("data:\n  path: ../data/series.csv\n")
    monkeypatch.chdir(tmp_path / "configs")
    assert load_config("c.yaml").data.path == str(tmp_path / "data" / "series.csv")
    monkeypatch.chdir(tmp_path)
    assert load_config("configs/c.yaml").data.path == str(tmp_path / "data" / "series.csv")
    # Command-line overrides stay relative to the working directory; URIs are left alone.
    assert load_config(cfg, overrides=["data.path=here.csv"]).data.path == "here.csv"
    cfg.write_text("data:\n  path: s3://bucket/series.csv\n")
    assert load_config(cfg).data.path == "s3://bucket/series.csv"  # intact, not s3:/bucket/...
