"""A retried study is logged once: a FINISHED parent run of the same study name is reused."""

from __future__ import annotations

from pathlib import Path

from tsdl.config import parse_config
from tsdl.tracking import MlflowRun
from tsdl.tracking.study import _finished_study_run


def test_finished_study_parent_is_found_and_failed_one_is_not(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = parse_config({"experiment": {"name": "dedupe"}, "tracking": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"}})
    assert _finished_study_run(config, "job-1") is None  # no experiment yet

    tags = {"tsdl.study": "job-1", "tsdl.kind": "study"}
    failed = MlflowRun.start(config, data_stats={}, run_name="job-1", extra_tags=tags)
    failed.finish("FAILED")
    assert _finished_study_run(config, "job-1") is None  # an attempt that died while logging

    done = MlflowRun.start(config, data_stats={}, run_name="job-1", extra_tags=tags)
    done.finish("FINISHED")
    other = MlflowRun.start(config, data_stats={}, run_name="job-2", extra_tags={**tags, "tsdl.study": "job-2"})
    other.finish("FINISHED")
    assert _finished_study_run(config, "job-1") == done.run_id
