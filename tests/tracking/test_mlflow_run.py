"""MlflowRun and worker_logger against a real local MLflow store in tmp_path, read back via MlflowClient."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import mlflow  # a core dependency: a broken import must fail, not skip
import pytest
import yaml

from tsdl.config import TsdlConfig, config_hash, parse_config, to_flat_dict
from tsdl.errors import TrackingError
from tsdl.tracking import (
    MlflowRun,
    connect,
    download_checkpoint,
    resolve_tracking_uri,
    tracking_uri_source,
    worker_logger,
)
from tsdl.tracking.mlflow_run import _param_value
from tsdl.train import NullLogger

DATA_STATS = {
    "n_series": 3,
    "n_timesteps": 1000,
    "windows": {"train": 500, "val": 80, "test": 160},
    "split_dates": {"val_start": "2020-01-01T00:00:00", "test_start": "2020-02-01T00:00:00"},
}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the module: creating MLflow's SQLite schema takes seconds."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture
def config(store_dir: Path) -> TsdlConfig:
    return parse_config(
        {
            "experiment": {"name": "unit", "group": "g1", "tags": {"owner": "me"}},
            "data": {"name": "toy"},
            "tracking": {"tracking_uri": f"sqlite:///{store_dir / 'mlflow.db'}"},
        }
    )


@pytest.fixture
def run(config: TsdlConfig) -> MlflowRun:
    run = MlflowRun.start(
        config, data_stats=DATA_STATS, run_name="r1", extra_tags={"purpose": "test"}
    )
    yield run
    run.finish()


def _client(run: MlflowRun):
    return mlflow.MlflowClient(tracking_uri=run.tracking_uri)


def _read_artifact(run: MlflowRun, name: str, tmp_path: Path) -> str:
    local = _client(run).download_artifacts(run.run_id, name, str(tmp_path / "dl"))
    return Path(local).read_text()


def test_start_logs_config_params_tags_system_and_data_stats(
    run: MlflowRun, config: TsdlConfig, store_dir: Path, tmp_path: Path
) -> None:
    logged = _client(run).get_run(run.run_id)
    assert logged.info.status == "RUNNING"
    assert logged.info.run_name == "r1"
    experiment = _client(run).get_experiment(run.experiment_id)
    assert experiment.name == "unit"
    # artifacts live beside the database, not in the current directory
    assert experiment.artifact_location == (store_dir / "mlruns" / "unit").as_uri()

    tags = logged.data.tags
    assert tags["architecture"] == config.model.name
    assert tags["dataset_name"] == "toy"
    assert tags["experiment_group"] == "g1"
    assert tags["owner"] == "me" and tags["purpose"] == "test"
    assert tags["tsdl.config_hash"] == config_hash(config)

    params = logged.data.params
    for key, value in to_flat_dict(config).items():
        assert params[key] == _param_value(value)
    assert params["data_stats.windows.test"] == "160"
    assert params["data_stats.split_dates.val_start"] == "2020-01-01T00:00:00"
    assert params["system.hostname"]
    # The distribution's version (a CUDA wheel says 2.13.0 there and 2.13.0+cu130 in torch.__version__).
    assert params["system.torch_version"] == importlib.metadata.version("torch")

    config_yaml = yaml.safe_load(_read_artifact(run, "config.yaml", tmp_path))
    assert parse_config(config_yaml) == config
    assert json.loads(_read_artifact(run, "data_stats.json", tmp_path)) == DATA_STATS
    system = json.loads(_read_artifact(run, "system_info.json", tmp_path))
    assert {"hostname", "cpu", "gpu_count", "cuda", "cudnn", "ray_version", "git_commit"} <= set(
        system
    )


def test_epoch_step_and_test_metrics_are_read_back(run: MlflowRun) -> None:
    for epoch in range(3):
        run.log_epoch(epoch, {"train_loss": 1.0 / (epoch + 1), "val_loss": 2.0 / (epoch + 1)})
    run.log_step(20, {"grad_norm/encoder.weight": 0.5})
    run.log_test_metrics({"MAE": 0.25, "RMSE": 0.5})
    run.log_test_metrics({"MAE": 2.5}, prefix="test_orig_")
    client = _client(run)
    history = client.get_metric_history(run.run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (1, 1.0), (2, 2.0 / 3)]
    grad = client.get_metric_history(run.run_id, "grad_norm/encoder.weight")
    assert [(m.step, m.value) for m in grad] == [(20, 0.5)]
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics["test_MAE"] == 0.25 and metrics["test_RMSE"] == 0.5
    assert metrics["test_orig_MAE"] == 2.5


def test_artifacts_and_finish(run: MlflowRun, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "model.pt").write_bytes(b"weights")
    with pytest.raises(TrackingError, match="no 'checkpoint' artifact"):
        download_checkpoint(run.run_id, run.tracking_uri)
    run.log_artifact_dir(ckpt, "checkpoint")
    run.log_json({"features": ["y", "hour"]}, "features.json")
    run.log_text("table", "test_metrics.txt")
    with pytest.raises(TrackingError, match="does not exist"):
        run.log_artifact_dir(tmp_path / "missing", "checkpoint")
    run.finish("FAILED")
    run.finish("FINISHED")  # ignored: the first status stands
    client = _client(run)
    names = {f.path for f in client.list_artifacts(run.run_id)}
    assert {"checkpoint", "features.json", "test_metrics.txt", "config.yaml"} <= names
    assert [f.path for f in client.list_artifacts(run.run_id, "checkpoint")] == [
        "checkpoint/model.pt"
    ]
    assert client.get_run(run.run_id).info.status == "FAILED"
    local = download_checkpoint(run.run_id, run.tracking_uri, dst=tmp_path / "restored")
    assert (local / "model.pt").read_bytes() == b"weights"


def test_context_manager_marks_failures_and_resume_reopens(config: TsdlConfig) -> None:
    with pytest.raises(RuntimeError), MlflowRun.start(config, data_stats={}) as run:
        raise RuntimeError("boom")
    client = _client(run)
    assert client.get_run(run.run_id).info.status == "FAILED"
    resumed = MlflowRun.resume(run.run_id, config)
    assert client.get_run(run.run_id).info.status == "RUNNING"
    resumed.log_epoch(5, {"train_loss": 0.1})
    resumed.finish()
    assert client.get_run(run.run_id).info.status == "FINISHED"
    with pytest.raises(TrackingError, match="run 'nope' not found"):
        MlflowRun.resume("nope", config)


def test_child_runs_of_one_process_do_not_interfere(run: MlflowRun, config: TsdlConfig) -> None:
    child_a = MlflowRun.start(config, data_stats={}, parent_run_id=run.run_id, run_name="a")
    child_b = MlflowRun.start(config, data_stats={}, parent_run_id=run.run_id, run_name="b")
    child_a.log_epoch(0, {"val_loss": 1.0})
    child_b.log_epoch(0, {"val_loss": 2.0})
    client = _client(run)
    for child, value in ((child_a, 1.0), (child_b, 2.0)):
        logged = client.get_run(child.run_id)
        assert logged.data.tags["mlflow.parentRunId"] == run.run_id
        assert logged.data.metrics == {"val_loss": value}
        child.finish()
    assert "val_loss" not in client.get_run(run.run_id).data.metrics


def test_worker_logger_logs_only_on_rank_zero(run: MlflowRun) -> None:
    for rank in (1, 2):
        logger = worker_logger(run.run_id, run.tracking_uri, rank=rank)
        assert isinstance(logger, NullLogger)
        logger.log_epoch(0, {"train_loss": 9.0})
        logger.log_step(1, {"grad_norm/x": 9.0})
    assert isinstance(worker_logger(None, run.tracking_uri, rank=0), NullLogger)
    client = _client(run)
    assert client.get_run(run.run_id).data.metrics == {}

    rank0 = worker_logger(run.run_id, run.tracking_uri, rank=0)
    assert not isinstance(rank0, NullLogger)
    rank0.log_epoch(0, {"train_loss": 1.5})
    assert client.get_run(run.run_id).data.metrics == {"train_loss": 1.5}


def test_unreachable_server_is_one_tracking_error(tmp_path: Path) -> None:
    config = parse_config({"tracking": {"tracking_uri": "http://127.0.0.1:9"}})
    with pytest.raises(
        TrackingError, match=r"MLflow tracking server http://127\.0\.0\.1:9 is unreachable"
    ):
        MlflowRun.start(config, data_stats={})


def test_resolve_tracking_uri_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = TsdlConfig().tracking
    assert resolve_tracking_uri(default) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    configured = parse_config({"tracking": {"tracking_uri": "sqlite:///runs/t.db"}}).tracking
    assert resolve_tracking_uri(configured) == f"sqlite:///{tmp_path.resolve() / 'runs' / 't.db'}"
    # The environment beats the config: a pod's MLFLOW_TRACKING_URI overrides a laptop config.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert resolve_tracking_uri(default) == "http://mlflow:5000"
    assert tracking_uri_source(configured) == ("http://mlflow:5000", "$MLFLOW_TRACKING_URI")
    # An explicit --tracking-uri beats both.
    assert tracking_uri_source(configured, "http://other:5000") == ("http://other:5000", "--tracking-uri")


def test_full_run_round_trip_through_load_run(
    run: MlflowRun, config: TsdlConfig, tmp_path: Path
) -> None:
    """What `tsdl train --reproduce` reads back: config, manifest and test metrics."""
    from tsdl.tracking import build_manifest, compare_metrics, learning_curve_png, load_run

    manifest = build_manifest(
        config=config,
        data_hash="sha256:1",
        split_boundaries={"test": {"start": 800}},
        scaler_state={"mean": [0.0]},
    )
    run.log_manifest(manifest)
    run.log_test_metrics({"MAE": 0.3})
    png = learning_curve_png([{"epoch": 0, "train_loss": 1.0}], tmp_path / "lc.png")
    run.log_figure(png)
    run.finish()

    loaded_config, loaded_manifest, metrics = load_run(run.run_id, run.tracking_uri)
    assert loaded_config == config
    assert loaded_manifest == manifest
    assert compare_metrics(metrics, {"test_MAE": 0.3})[0]
    local = _client(run).download_artifacts(run.run_id, "plots/lc.png", str(tmp_path / "dl"))
    assert Path(local).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TrackingError, match="not found"):
        load_run("0" * 32, run.tracking_uri)


def test_refused_access_is_named_with_the_credentials_fix() -> None:
    """A server that answers 403 (auth, or a Host not in --allowed-hosts) is not 'unreachable'."""
    import http.server
    import threading

    class Deny(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(403)
            self.end_headers()
            self.wfile.write(b"Forbidden")

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Deny)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(TrackingError, match=rf"MLflow tracking server {uri} refused access") as err:
            connect(uri)
        assert "MLFLOW_TRACKING_TOKEN" in err.value.hint
    finally:
        server.shutdown()
