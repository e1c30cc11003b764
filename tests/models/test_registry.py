"""The registry covers every config name; models survive the copies Ray and DDP make."""

from __future__ import annotations

import copy
import io
import pickle
import subprocess
import sys
from typing import get_args

import pytest
import torch

from tests.models._contract import make_inputs, make_model
from tsdl.config.loss import LossConfig
from tsdl.config.model import ModelConfig
from tsdl.losses import LOSSES, build_loss
from tsdl.models import MODELS


def test_every_config_model_name_is_registered() -> None:
    union = get_args(get_args(ModelConfig)[0])
    names = {cls.model_fields["name"].default for cls in union}
    assert names == set(MODELS) == {"dlinear", "nhits", "rnn", "patchtst"}


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_pickle_deepcopy_and_state_dict_round_trip(model_name: str) -> None:
    model = make_model(model_name, n_past=2, n_future=1, n_static=1).eval()
    fresh = make_model(model_name, n_past=2, n_future=1, n_static=1, seed=99).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    inputs = make_inputs(2, n_past=2, n_future=1, n_static=1)
    with torch.no_grad():
        expected = model(*inputs)
        for other in (fresh, copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            torch.testing.assert_close(other(*inputs), expected)


def test_models_and_losses_do_not_import_later_stages() -> None:
    code = (
        "import sys, tsdl.models, tsdl.losses; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'ray', 'mlflow', 'optuna', 'kubernetes', 'matplotlib'} "
        "or m.startswith(('tsdl.train', 'tsdl.tune', 'tsdl.tracking', 'tsdl.deploy'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_runs_on_cuda_with_deterministic_algorithms(model_name: str, loss_name: str, monkeypatch) -> None:
    """Forward, backward, point and quantiles under ``training.deterministic: true`` (the default):
    an op without a deterministic CUDA kernel (F.interpolate linear, cumsum) raises here."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    loss = build_loss(LossConfig(name=loss_name)).cuda()
    norm = {} if loss.supports_instance_norm else {"instance_norm": "none"}
    model = make_model(model_name, n_past=2, n_future=1, n_static=1, loss=loss, **norm).cuda()
    past, future, static = (t.cuda() for t in make_inputs(4, n_past=2, n_future=1, n_static=1))
    torch.use_deterministic_algorithms(True)
    try:
        out = model(past, future, static)
        loss(out, past[:, -out.shape[1] :, 0].abs().round()).backward()
        assert loss.point(out).device.type == "cuda"
        q = loss.quantiles(out, [0.1, 0.9])
        assert q is None or q.device.type == "cuda"
    finally:
        torch.use_deterministic_algorithms(False)
