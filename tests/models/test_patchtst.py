"""PatchTST: patch count and end padding, config validation, RevIN, learning."""

from __future__ import annotations

import pytest
import torch

from tests.models._contract import DIMS, make_inputs, make_model
from tests.models._fit import fit_sines
from tsdl.errors import ConfigError
from tsdl.models.patchtst import n_patches


def test_patch_count_matches_the_paper() -> None:
    # the paper: L=336, P=16, S=8 -> 42 patches after padding by S
    assert n_patches(336, 16, 8) == 42
    model = make_model("patchtst", patch_len=8, patch_stride=4)
    assert model.n_patches == n_patches(DIMS["input_chunk_length"], 8, 4) == 8


def test_patches_replicate_the_last_value_at_the_end() -> None:
    model = make_model("patchtst", patch_len=4, patch_stride=2)
    x = torch.arange(1.0, 33.0)[None]
    patches = model.patchify(x)
    assert patches.shape == (1, model.n_patches, 4)
    torch.testing.assert_close(patches[0, 0], torch.tensor([1.0, 2.0, 3.0, 4.0]))
    torch.testing.assert_close(patches[0, -1], torch.tensor([31.0, 32.0, 32.0, 32.0]))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [({"patch_len": 64}, "patch_len"), ({"hidden_size": 18, "n_heads": 4}, "n_heads")],
)
def test_invalid_shapes_raise_config_errors(overrides: dict[str, int], field: str) -> None:
    with pytest.raises(ConfigError, match=f"model.{field}="):
        make_model("patchtst", **overrides)


def test_revin_is_the_default_and_uses_the_shared_instance_norm() -> None:
    model = make_model("patchtst").eval()
    assert model.instance_norm is not None and model.instance_norm.mode == "revin"
    assert make_model("patchtst", instance_norm="none").instance_norm is None
    past, future, static = make_inputs(2)
    with torch.no_grad():
        shifted = model(past + 10.0, future, static)
        torch.testing.assert_close(shifted, model(past, future, static) + 10.0, rtol=1e-5, atol=1e-4)


def test_learns_to_continue_sines() -> None:
    assert fit_sines(make_model("patchtst", dropout=0.0), steps=60, lr=0.005) < 0.01
