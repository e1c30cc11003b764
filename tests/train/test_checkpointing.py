"""Checkpoints hold only tensors and plain values and are read with ``weights_only=True``.

A checkpoint downloaded from a shared MLflow server (``--init-from``, ``evaluate --run-id``,
``predict --run-id``) used to be unpickled with ``weights_only=False``: a crafted file ran code.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tsdl import api
from tsdl.cli.main import main
from tsdl.config import TsdlConfig
from tsdl.errors import TrainingError
from tsdl.train.checkpointing import (
    BEST_FILE,
    LAST_FILE,
    BestWeights,
    TrainState,
    load_best,
    load_last,
    save_checkpoint,
)
from tsdl.train.early_stopping import EarlyStopping
from tsdl.train.seeding import rng_state, set_rng_state


class _Payload:
    """Unpickling this runs ``Path.touch(marker)``: the stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _real_checkpoint(directory: Path) -> None:
    """A checkpoint as the training loop writes it: trained Adam, plateau scheduler, RNG states."""
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        scheduler.step(1.0)
    stopper = EarlyStopping(patience=2)
    stopper.update(0.4, epoch=1)
    np.random.seed(3)
    last = TrainState(
        epoch=3,
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        scheduler=scheduler.state_dict(),
        grad_scaler=torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        early_stopping=stopper.state_dict(),
        rng=rng_state(),
        history=[{"epoch": 1, "train_loss": 0.5, "val_loss": 0.4}],
        global_step=30,
    )
    best = BestWeights(
        epoch=1,
        val_loss=0.4,
        model=model.state_dict(),
        config=TsdlConfig().model_dump(mode="json"),
        dims={"input_chunk_length": 4},
        scaler_state={
            "kind": "standard",
            "series_ids": ["a"],
            "columns": ["y"],
            "center": [[0.0]],
            "scale": [[1.0]],
        },
    )
    save_checkpoint(directory, last=last, best=best)


def test_training_state_round_trips_through_weights_only(tmp_path: Path) -> None:
    _real_checkpoint(tmp_path)
    expected = np.random.rand(3)  # the draws after the saved RNG state
    np.random.seed(99)
    last = load_last(tmp_path)
    set_rng_state(last.rng)
    np.testing.assert_array_equal(np.random.rand(3), expected)
    opt = torch.optim.Adam(torch.nn.Linear(4, 2).parameters(), lr=0.01)
    opt.load_state_dict(last.optimizer)
    assert opt.state_dict()["state"][0]["step"] == 3
    assert load_best(tmp_path).scaler_state["kind"] == "standard"
    torch.load(tmp_path / LAST_FILE, weights_only=True)  # plain values only, by construction


def test_a_pickle_payload_in_a_checkpoint_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _real_checkpoint(tmp_path / "ckpt")
    state = torch.load(tmp_path / "ckpt" / BEST_FILE, weights_only=True)
    state["scaler_state"] = {"kind": _Payload(marker)}
    torch.save(state, tmp_path / "ckpt" / BEST_FILE)
    # Sanity: the payload does run when unpickled without weights_only.
    torch.load(tmp_path / "ckpt" / BEST_FILE, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(TrainingError, match="refused unread"):
        load_best(tmp_path / "ckpt")
    with pytest.raises(TrainingError, match="refused unread"):
        api.evaluate(checkpoint=tmp_path / "ckpt")
    assert not marker.exists()


def test_the_numpy_pickles_of_older_checkpoints_are_refused(tmp_path: Path) -> None:
    _real_checkpoint(tmp_path)
    state = torch.load(tmp_path / LAST_FILE, weights_only=True)
    state["rng"]["numpy"] = np.random.get_state()  # how checkpoints were written before
    torch.save(state, tmp_path / LAST_FILE)
    with pytest.raises(TrainingError, match="objects other than tensors and plain values"):
        load_last(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not_a_checkpoint"])
def test_corrupt_checkpoints_are_one_line_errors(tmp_path: Path, damage: str, capsys) -> None:
    _real_checkpoint(tmp_path)
    path = tmp_path / BEST_FILE
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    expected = (
        "is not a tsdl BestWeights" if damage == "not_a_checkpoint" else "is corrupt or truncated"
    )
    with pytest.raises(TrainingError, match=expected):
        load_best(tmp_path)
    assert main(["evaluate", "--checkpoint", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "Traceback" not in err and len(err.splitlines()) <= 2


def test_an_incompatible_stored_config_is_a_one_line_error(tmp_path: Path) -> None:
    _real_checkpoint(tmp_path)
    state = torch.load(tmp_path / BEST_FILE, weights_only=True)
    state["config"]["model"] = {"name": "patchtst", "revin": True}  # a field this version dropped
    torch.save(state, tmp_path / BEST_FILE)
    with pytest.raises(TrainingError, match="model.patchtst.revin"):
        api.evaluate(checkpoint=tmp_path)


def test_pickle_module_is_not_what_loads_checkpoints() -> None:
    # weights_only=True uses torch's restricted unpickler; a bare pickle.load would run payloads.
    import inspect

    import tsdl.train.checkpointing as checkpointing

    assert "weights_only=True" in inspect.getsource(checkpointing._load)
    assert "pickle.load(" not in inspect.getsource(checkpointing)
    assert pickle  # the module is only used for its exception type
