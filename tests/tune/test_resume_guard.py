"""N3: a study or run resumed under a reused name only with the config it was started with.

A RayJob's entrypoint always passes `--resume-if-exists` with the job's name, so `helm install` of
the same release or `tsdl submit` twice lands on the stored study. A changed config must fail in
one line with the diff and the two fixes, never hand back the old results labelled SUCCEEDED.
"""

from __future__ import annotations

import pytest

from tsdl.cli.main import main
from tsdl.config import TsdlConfig
from tsdl.errors import ConfigError, TuneError
from tsdl.tune.study import _save_state, run_study


def _config(tmp_path, **tune) -> TsdlConfig:
    return TsdlConfig.model_validate(
        {
            "data": {"synthetic": {"n_series": 2, "n_timesteps": 300}, "input_chunk_length": 24,
                     "output_chunk_length": 6},
            "resources": {"storage_path": str(tmp_path)},
            "tracking": {"enabled": False},
            "tune": {"budget": "smoke", **tune},
        }
    )


class _RayReached(Exception):
    """Raised in place of starting Ray: everything before it ran."""


@pytest.fixture
def no_ray(monkeypatch):
    def refuse(address=None):
        raise _RayReached

    monkeypatch.setattr("tsdl.ray_connection.ensure_ray", refuse)


def test_changed_config_under_the_same_study_name_is_refused_with_the_diff(tmp_path) -> None:
    old = _config(tmp_path)
    _save_state(str(tmp_path / "job-tune"), old, "smoke")
    new = old.model_copy(update={"model": old.model.model_copy(update={"dropout": 0.3})})
    with pytest.raises(TuneError) as refused:
        run_study(new, name="job-tune", resume_if_exists=True, progress=False)
    assert "study 'job-tune'" in refused.value.message
    assert "model.dropout: " in refused.value.message and "-> 0.3" in refused.value.message
    assert "new name" in refused.value.hint and str(tmp_path / "job-tune") in refused.value.hint


def test_changed_budget_is_a_changed_study(tmp_path) -> None:
    _save_state(str(tmp_path / "s"), _config(tmp_path), "smoke")
    with pytest.raises(TuneError, match="budget: smoke -> small"):
        run_study(_config(tmp_path), name="s", budget="small", resume_if_exists=True, progress=False)


def test_same_config_resumes_even_where_it_is_stored_or_tracked_differs(tmp_path, no_ray, capsys) -> None:
    """Storage path, tracking and deploy do not change what a study computes (a retry may see
    another tracking URI): those still resume. `--quiet` does not hide the resume line."""
    old = _config(tmp_path)
    _save_state(str(tmp_path / "s"), old, "smoke")
    same = TsdlConfig.model_validate(
        {**old.model_dump(mode="json"), "tracking": {"enabled": False, "tracking_uri": "http://x:5000"},
         "deploy": {"name": "other"}}
    )
    with pytest.raises(_RayReached):
        run_study(same, name="s", resume_if_exists=True, progress=False)
    assert "resuming study s (0 trials finished)" in capsys.readouterr().out


def test_a_finished_study_says_nothing_runs_even_when_quiet(tmp_path, no_ray, capsys) -> None:
    _save_state(str(tmp_path / "s"), _config(tmp_path), "smoke")
    (tmp_path / "s" / "summary.json").write_text("{}")
    with pytest.raises(_RayReached):
        run_study(_config(tmp_path), name="s", resume_if_exists=True, progress=False)
    assert "study s already finished: nothing to run" in capsys.readouterr().out


def test_studies_stored_before_the_hash_are_checked_against_their_config(tmp_path) -> None:
    import json

    _save_state(str(tmp_path / "s"), _config(tmp_path), "smoke")
    state = tmp_path / "s" / "study.json"
    state.write_text(json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "workload_hash"}))
    with pytest.raises(TuneError, match="tune.stage1_trials: 50 -> 3"):
        run_study(_config(tmp_path, stage1_trials=3), name="s", resume_if_exists=True, progress=False)


def test_cli_prints_the_refusal_on_one_line(tmp_path, capsys) -> None:
    _save_state(str(tmp_path / "job"), _config(tmp_path), "smoke")
    code = main(["tune", "--example", "--study-name", "job", "--resume-if-exists", "--quiet",
                 "--set", f"resources.storage_path={tmp_path}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: study 'job'") and "(fix: run it under a new name" in err[0]


def test_train_run_under_a_reused_name_with_another_config_is_refused(tmp_path) -> None:
    from tsdl import api
    from tsdl.train import RunRecord

    old = _config(tmp_path)
    RunRecord(run_name="job-train", storage_path=str(tmp_path), config=old.model_dump(mode="json"),
              workload_hash=api._run_workload_hash(old)).save()
    new = old.model_copy(update={"training": old.training.model_copy(update={"max_epochs": 99})})
    with pytest.raises(ConfigError) as refused:
        api.train(new, run_name="job-train", resume_if_exists=True, progress=False)
    assert "training.max_epochs: " in refused.value.message and "-> 99" in refused.value.message
    assert "delete" in refused.value.hint


def test_results_storage_vanishing_mid_study_is_named_not_an_internal_error(tmp_path, monkeypatch) -> None:
    """N8: a bucket deleted mid-study ended in `internal error: ValueError: No experiment snapshot
    file ... please report it`; the user must be told the storage is gone."""
    import shutil

    from tsdl.errors import StorageError

    monkeypatch.setattr("tsdl.ray_connection.ensure_ray", lambda address=None: None)

    class VanishingStore:
        def __init__(self, *args, root, **kwargs) -> None:
            self.root = root

        def run(self, *args, **kwargs):
            shutil.rmtree(self.root)  # the bucket goes away after the first trial
            raise ValueError(f"No experiment snapshot file of form 'experiment_state-*.json' was found at: {self.root}")

        def close(self) -> None:
            pass

    monkeypatch.setattr("tsdl.tune.runner.StageRunner", VanishingStore)
    with pytest.raises(StorageError) as caught:
        run_study(_config(tmp_path), name="bkt", progress=False)
    assert caught.value.message.startswith(f"results storage {tmp_path / 'bkt'} is gone")
    assert "No experiment snapshot file" in caught.value.message  # what Tune said, kept short


def test_other_stage_errors_are_not_blamed_on_storage(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tsdl.ray_connection.ensure_ray", lambda address=None: None)

    class Broken:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def run(self, *args, **kwargs):
            raise ValueError("something else")

        def close(self) -> None:
            pass

    monkeypatch.setattr("tsdl.tune.runner.StageRunner", Broken)
    with pytest.raises(ValueError, match="something else"):
        run_study(_config(tmp_path), name="ok", progress=False)
