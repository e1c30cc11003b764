"""An MLflow run never stays RUNNING: FAILED after any error, KILLED on SIGTERM and Ctrl-C.

Statuses are read back from a real local MLflow store with MlflowClient; the signals are real
signals sent to a `tsdl train` process in the middle of its epochs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import ray.cloudpickle
import yaml
from mlflow import MlflowClient

from tests.conftest import default_sigint
from tsdl import api
from tsdl.errors import TrackingError

pytestmark = [pytest.mark.slow]  # real training runs (one worker: in the driver, no Ray)

REPO_ROOT = Path(__file__).resolve().parents[2]
# The hook below runs on Ray workers, which cannot import this test module: ship it by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class ClobberCheckpointArtifact:
    """At the start of the last epoch, put a file where the run's checkpoint artifact must go:
    a real artifact-store failure that only shows once training is over."""

    mlruns: str
    epoch: int

    def __call__(self, epoch: int, rank: int) -> None:
        if rank == 0 and epoch == self.epoch:
            for artifacts in Path(self.mlruns).glob("*/*/artifacts"):
                (artifacts / "checkpoint").write_text("not a directory")


def test_failure_after_training_ends_the_run_failed(make_config, tmp_path: Path) -> None:
    config = make_config()
    hook = ClobberCheckpointArtifact(str(tmp_path / "mlruns"), epoch=config.training.max_epochs)
    with pytest.raises(TrackingError, match="logging the results to MLflow run .* failed"):
        api.train(config, progress=False, run_name="clobbered", epoch_hooks=(hook,))
    (run,) = MlflowClient(config.tracking.tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(config.tracking.tracking_uri).search_experiments()]
    )
    assert run.info.status == "FAILED"
    record = json.loads((tmp_path / "results" / "clobbered" / "tsdl_run.json").read_text())
    assert record["status"] == "FAILED"


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code", "line"), [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")])
def test_signal_mid_run_ends_the_run_killed(tmp_path: Path, signum: int, code: int, line: str) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = {
        "experiment": {"name": "sig"},
        "data": {"synthetic": {"n_series": 2, "n_timesteps": 300, "seed": 1}, "input_chunk_length": 24,
                 "output_chunk_length": 6, "seasonality": 1},
        "training": {"max_epochs": 500, "batch_size": 16, "limit_train_batches": 2},
        "resources": {"storage_path": str(tmp_path / "results"), "max_failures": 0},
        "tracking": {"tracking_uri": uri},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    scratch = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # short: Ray's socket paths live here
    env = {**os.environ, "TMPDIR": str(scratch),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tsdl.cli.main", "train", "-c", "cfg.yaml", "--run-name", "victim", "--quiet"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,
    )
    try:
        run_id = _wait_for_epochs(tmp_path, uri, proc, epochs=2)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
        leftovers = [p.name for p in scratch.iterdir() if p.name.startswith("tsdl-")]
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [x for x in err.splitlines() if x.strip()]
    assert proc.returncode == code, err
    assert "Traceback" not in err and lines[-1].startswith(line), err
    assert MlflowClient(uri).get_run(run_id).info.status == "KILLED"
    record = json.loads((tmp_path / "results" / "victim" / "tsdl_run.json").read_text())
    assert record["status"] == "KILLED"
    assert not leftovers, f"temporary checkpoint copies left behind: {leftovers}"


def _wait_for_epochs(tmp_path: Path, uri: str, proc: subprocess.Popen, *, epochs: int) -> str:
    """The run id once the run has logged ``epochs`` epochs (it is then mid-training)."""
    record = tmp_path / "results" / "victim" / "tsdl_run.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if record.exists():
            run_id = json.loads(record.read_text())["mlflow_run_id"]
            if len(MlflowClient(uri).get_metric_history(run_id, "train_loss")) >= epochs:
                return run_id
        time.sleep(1)
    raise AssertionError("the run never logged its first epochs")
