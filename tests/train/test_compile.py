"""`training.compile`: a validated opt-in that compiles the model the loop trains, refuses in one
line where torch.compile cannot work, and leaves checkpoints that resume and fine-tune load.

The DDP case (a compiled model on 2 Ray Train ranks staying in sync) is in test_ddp_sync.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tsdl import api
from tsdl.config import parse_config
from tsdl.errors import ConfigError
from tsdl.train.checkpointing import load_best, load_last
from tsdl.train.epoch_hooks import EpochLog, FailOnce
from tsdl.train.kernels import compile_problem


def test_compile_is_an_opt_in_bool_validated_with_the_config() -> None:
    assert parse_config({}).training.compile is False
    assert parse_config({"training": {"compile": True}}).training.compile is True
    with pytest.raises(ConfigError, match="training.compile"):
        parse_config({"training": {"compile": "sometimes"}})


def test_without_a_cxx_compiler_a_compiled_run_is_refused_in_one_line_before_training(
    make_config, tmp_path: Path
) -> None:
    from torch._inductor import config as inductor

    config = make_config(training__compile=True, tracking__enabled=False)
    with inductor.patch({"cpp.cxx": (None, str(tmp_path / "no-such-g++"))}):  # $CXX, as torch read it
        assert "no C++ compiler" in compile_problem("cpu")
        with pytest.raises(ConfigError, match=r"^training.compile: true cannot work here: .*no C\+\+ compiler") as err:
            api.train(config, progress=False, run_name="refused")
    assert "\n" not in str(err.value) and "training.compile: false" in str(err.value)
    assert not (Path(config.resources.storage_path) / "refused").exists(), "nothing trained"
    assert compile_problem("cpu") is None  # this machine has g++ (the test below compiles)


@pytest.mark.slow(seconds=22)
def test_a_compiled_run_trains_like_eager_resumes_and_leaves_loadable_checkpoints(
    make_config, tmp_path: Path
) -> None:
    from torch._dynamo.utils import counters

    eager = api.train(make_config(tracking__enabled=False), progress=False)
    counters.clear()
    config = make_config(training__compile=True, resources__max_failures=1)
    hooks = (EpochLog(str(tmp_path / "started.log")), FailOnce(2, str(tmp_path / "marker")))
    compiled = api.train(config, epoch_hooks=hooks, progress=False)
    assert counters["stats"]["unique_graphs"] >= 1, "nothing was compiled"
    # Epoch 2 failed once and the run resumed from epoch 1's checkpoint of the compiled model.
    assert [int(x) for x in (tmp_path / "started.log").read_text().split()] == [1, 2, 2, 3]
    assert [h["epoch"] for h in compiled.history] == [1, 2, 3]
    # The compiled kernels compute the same function: the same losses to float precision.
    for ours, theirs in zip(compiled.history, eager.history, strict=True):
        assert math.isclose(ours["train_loss"], theirs["train_loss"], rel_tol=1e-4)
        assert math.isclose(ours["val_loss"], theirs["val_loss"], rel_tol=1e-4)
    best, last = load_best(compiled.checkpoint_dir), load_last(compiled.checkpoint_dir)
    assert best.model.keys() == last.model.keys()
    assert not [k for k in best.model if "_orig_mod" in k], "checkpoint keys carry torch.compile's prefix"
    # A fine-tuned child starts from the compiled parent's weights (strict load), uncompiled.
    child = api.train(make_config(tracking__enabled=False, training__max_epochs=1, finetune__strict=True),
                      progress=False, init_from=str(compiled.checkpoint_dir))
    assert [h["epoch"] for h in child.history] == [1]
    manifest = _manifest(config, compiled.mlflow_run_id)
    assert manifest["compile"] is True and manifest["optimizer_implementation"] == "fused"


def _manifest(config, run_id: str) -> dict:
    import json

    from mlflow import MlflowClient

    client = MlflowClient(config.tracking.tracking_uri)
    return json.loads(Path(client.download_artifacts(run_id, "manifest.json")).read_text())


def test_a_compiled_model_is_the_same_module_with_its_own_state_dict_keys() -> None:
    from tsdl.losses import build_loss
    from tsdl.models import build_model
    from tsdl.train.kernels import compile_model

    config = parse_config({"model": {"name": "dlinear"}})
    model = build_model(config.model, input_chunk_length=24, output_chunk_length=6, n_past_features=1,
                        n_future_features=0, n_static=0, loss=build_loss(config.loss))
    keys = list(model.state_dict())
    assert compile_model(model) is model and list(model.state_dict()) == keys
    assert model._compiled_call_impl is not None
    torch._dynamo.reset()
