"""Local paths and object-store URIs through one filesystem, against a real S3-compatible server."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tsdl import storage
from tsdl.cli.main import main
from tsdl.errors import DataError, StorageError

ETT_LIKE = "date,HUFL,OT\n" + "".join(
    f"2024-01-{1 + h // 24:02d} {h % 24:02d}:00:00,{h % 7}.5,{(h * 37) % 11}.25\n" for h in range(24 * 20)
)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_local_paths_become_absolute_and_uris_pass_through(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert storage.absolute("data/x.csv") == str(tmp_path / "data" / "x.csv")
    assert storage.absolute(f"file://{tmp_path}/x.csv") == str(tmp_path / "x.csv")
    assert storage.absolute("s3://bkt/a/b.csv") == "s3://bkt/a/b.csv"
    assert storage.is_uri("gs://b/k") and not storage.is_uri("/tmp/x") and not storage.is_uri("file:///x")
    assert storage.join("s3://bkt/runs/", "/r1", "f.json") == "s3://bkt/runs/r1/f.json"


def test_s3_reads_and_writes_through_the_env_endpoint(s3) -> None:
    uri = s3.put("in/x.csv", "a,b\n1,2\n")
    assert storage.require_file(uri, what="data file", fix="-") == 8
    assert storage.read_bytes(uri) == b"a,b\n1,2\n"
    assert storage.write_bytes(s3.uri("out/deep/y.txt"), b"hi") == s3.uri("out/deep/y.txt")
    assert "out/deep/y.txt" in s3.keys("out/")
    path, fs = storage.ray_storage(s3.uri("results"))
    assert path == f"{s3.bucket}/results" and fs is not None and fs.type_name == "s3"


def test_aws_endpoint_url_s3_beats_aws_endpoint_url(s3, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    assert storage.require_file(s3.put("k.csv", "x\n"), what="data file", fix="-") == 2


def test_missing_object_names_the_uri(s3) -> None:
    with pytest.raises(DataError, match=rf"data file s3://{s3.bucket}/nope.csv .*does not exist") as err:
        storage.require_file(s3.uri("nope.csv"), what="data file", fix="upload it", error=DataError)
    assert err.value.hint == "upload it"


def test_missing_bucket_is_named(s3) -> None:
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-tsdl' does not exist") as err:
        storage.require_file("s3://no-such-bucket-tsdl/x.csv", what="data file", fix="-")
    assert "create the bucket" in err.value.hint
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-tsdl' does not exist"):
        storage.probe_writable("s3://no-such-bucket-tsdl/results")


def test_unreachable_endpoint_fails_fast(s3, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_closed_port()}")
    start = time.monotonic()
    with pytest.raises(StorageError, match="object store is unreachable") as err:
        storage.probe_writable(s3.uri("results"))
    assert time.monotonic() - start < 30
    assert "AWS_ENDPOINT_URL" in err.value.hint and s3.uri("results") in err.value.message
    with pytest.raises(DataError, match="unreachable"):
        storage.require_file(s3.uri("x.csv"), what="data file", fix="-", error=DataError)


def test_denied_credentials_are_named(s3) -> None:
    uri = s3.put("x.csv", "a\n1\n")
    with s3.auth_enforced():  # the dummy keys are unknown to the server once it checks them
        with pytest.raises(StorageError, match="access denied") as err:
            storage.probe_writable(s3.uri("results"))
        assert "AWS_ACCESS_KEY_ID" in err.value.hint
        with pytest.raises(DataError, match=f"{uri}.*access denied"):
            storage.require_file(uri, what="data file", fix="-", error=DataError)


def test_probe_writes_and_removes_its_marker(s3, tmp_path: Path) -> None:
    storage.probe_writable(s3.uri("results"))
    assert [k for k in s3.keys() if "probe" in k] == []  # only pyarrow's "results/" marker stays
    storage.probe_writable(str(tmp_path / "results"))
    assert list((tmp_path / "results").iterdir()) == []


def test_unwritable_local_storage_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match=f"storage path {blocker}/results"):
        storage.probe_writable(str(blocker / "results"))


def test_check_data_reads_an_s3_object(s3, capsys) -> None:
    uri = s3.put("data/ett.csv", ETT_LIKE)
    code = main(["check-data", uri, "--set", "data.input_chunk_length=24", "--set", "data.output_chunk_length=6"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert uri in out  # the report names its source


def test_check_data_on_a_missing_object_is_one_line(s3, capsys) -> None:
    assert main(["check-data", s3.uri("data/missing.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: data file {s3.uri('data/missing.csv')} (endpoint {s3.endpoint}) does not exist (fix: ")
