"""RNN: both cells, covariates reach the decoder, learning."""

from __future__ import annotations

import pytest
import torch

from tests.models._contract import make_inputs, make_model
from tests.models._fit import fit_sines


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cell_type_follows_config(cell: str) -> None:
    model = make_model("rnn", cell=cell, n_layers=2)
    assert type(model.encoder).__name__ == cell.upper()
    assert model.encoder.num_layers == 2


def test_future_and_static_covariates_change_the_forecast() -> None:
    model = make_model("rnn", n_past=2, n_future=1, n_static=2).eval()
    past, future, static = make_inputs(3, n_past=2, n_future=1, n_static=2)
    with torch.no_grad():
        base = model(past, future, static)
        assert not torch.allclose(base, model(past, future + 1.0, static))
        assert not torch.allclose(base, model(past, future, static + 1.0))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_learns_to_continue_sines(cell: str) -> None:
    assert fit_sines(make_model("rnn", cell=cell, dropout=0.0), steps=100) < 0.01
