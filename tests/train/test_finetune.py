"""Fine-tuning units without Ray: shape-checked loads, freezing, param groups, warm-up, config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tsdl.config import TsdlConfig, parse_config
from tsdl.data import prepare_data
from tsdl.errors import ConfigError, DataError
from tsdl.losses import build_loss
from tsdl.models import build_model
from tsdl.train.checkpointing import BestWeights, TrainState, save_checkpoint
from tsdl.train.finetune import apply_finetune, check_finetune, lineage
from tsdl.train.pretrained import load_parent, load_weights, prepare_finetune_data, resolve_parent

DIMS = dict(
    input_chunk_length=24, output_chunk_length=6, n_past_features=1, n_future_features=0, n_static=0
)


def _config(model: str = "nhits", **finetune) -> TsdlConfig:
    return parse_config(
        {
            "data": {
                "synthetic": {"n_series": 3, "n_timesteps": 200, "seed": 3},
                "input_chunk_length": 24,
                "output_chunk_length": 6,
            },
            "model": {"name": model, "hidden_size": 16},
            "training": {"optimizer": {"lr": 0.01, "weight_decay": 0.1}},
            "finetune": finetune,
        }
    )


def _model(config: TsdlConfig, seed: int = 0, **dims) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(config.model, **(DIMS | dims), loss=build_loss(config.loss))


def _save_parent(
    tmp_path: Path, config: TsdlConfig, model: torch.nn.Module, scaler_state: dict
) -> Path:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    last = TrainState(
        epoch=1, model=state, optimizer={}, scheduler={}, grad_scaler={}, early_stopping={}, rng={}
    )
    best = BestWeights(
        epoch=1,
        val_loss=0.5,
        model=state,
        config=config.model_dump(mode="json"),
        dims=DIMS,
        scaler_state=scaler_state,
    )
    save_checkpoint(tmp_path / "parent", last=last, best=best)
    return tmp_path / "parent"


def _train_steps(model: torch.nn.Module, plan, epoch: int, steps: int = 3) -> torch.optim.Optimizer:
    """`steps` AdamW steps the way the loop takes them (plan hooks between backward and step)."""
    optimizer = torch.optim.AdamW(plan.param_groups(model), lr=0.01, weight_decay=0.1)
    plan.start_epoch(epoch, steps)
    past = torch.randn(8, 24, 1)
    for _ in range(steps):
        optimizer.zero_grad()
        model(past, torch.zeros(8, 6, 0), torch.zeros(8, 0)).pow(2).mean().backward()
        plan.before_step(model, optimizer)
        optimizer.step()
    return optimizer


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_parent_weights_load_exactly(tmp_path: Path) -> None:
    config = _config()
    parent_dir = _save_parent(tmp_path, config, _model(config, seed=1), {"kind": "standard"})
    parent = resolve_parent(str(parent_dir))
    child = _model(config, seed=2)
    plan = apply_finetune(
        child, config.model_copy(update={"finetune": config.finetune}), parent.weights
    )
    for name, tensor in child.state_dict().items():
        assert torch.equal(tensor, parent.weights[name]), name
    assert (
        plan.load is not None
        and plan.load.loaded == list(child.state_dict())
        and not plan.load.skipped
    )
    assert (
        parent.best_val_loss == 0.5
        and parent.run_id is None
        and parent.checkpoint_uri == str(parent_dir)
    )


def test_mismatched_shapes_name_every_layer(tmp_path: Path) -> None:
    config = _config()
    weights = _model(config, seed=1).state_dict()
    child = _model(
        config, seed=2, output_chunk_length=12
    )  # another horizon: forecast layers differ
    with pytest.raises(ConfigError) as err:
        load_weights(child, weights, strict=True)
    message = str(err.value)
    parent_shape = list(weights["blocks.0.forecast.weight"].shape)
    child_shape = list(child.state_dict()["blocks.0.forecast.weight"].shape)
    assert f"blocks.0.forecast.weight: parent {parent_shape} vs model {child_shape}" in message
    assert "finetune.strict=false" in message and "reset_head" in message

    fresh = {k: v.clone() for k, v in child.state_dict().items()}
    load = load_weights(child, weights, strict=False)
    assert set(load.skipped) == {n for n in fresh if ".forecast." in n}
    for name, tensor in child.state_dict().items():
        expected = fresh[name] if name in load.skipped else weights[name]
        assert torch.equal(tensor, expected), name


def test_missing_and_extra_layers_are_listed() -> None:
    config = _config("dlinear")
    weights = dict(_model(config).state_dict())
    weights["extra.weight"] = torch.zeros(2)
    del weights["trend.bias"]
    with pytest.raises(
        ConfigError, match=r"1 missing from the parent \(trend.bias\); 1 only in the parent \(extra"
    ):
        load_weights(_model(config), weights, strict=True)


def test_reset_head_keeps_fresh_head(tmp_path: Path) -> None:
    config = _config("patchtst", reset_head=True, init_from="x")
    parent = _model(
        config, seed=1, output_chunk_length=12
    ).state_dict()  # the head differs in shape
    child = _model(config, seed=2)
    fresh_head = child.head.weight.detach().clone()
    plan = apply_finetune(child, config, parent)
    assert torch.equal(child.head.weight, fresh_head)
    assert torch.equal(child.embed.weight, parent["embed.weight"])
    assert plan.load.reset == ["head.weight", "head.bias"] and not plan.load.skipped


def test_architecture_mismatch_fails_before_shapes(tmp_path: Path) -> None:
    parent_config = _config("dlinear")
    parent_dir = _save_parent(tmp_path, parent_config, _model(parent_config), {})
    parent = load_parent(parent_dir)
    with pytest.raises(ConfigError, match="is a 'dlinear' model, this config builds 'nhits'"):
        check_finetune(_config("nhits"), DIMS, parent)


def test_frozen_backbone_does_not_change_then_unfreezes() -> None:
    config = _config(freeze=["backbone"], unfreeze_epoch=2)
    model = _model(config)
    plan = apply_finetune(model, config)
    before = _snapshot(model)
    _train_steps(model, plan, epoch=1)
    after = _snapshot(model)
    assert plan.frozen and set(plan.frozen).isdisjoint(plan.head)
    for name in before:
        changed = not torch.equal(before[name], after[name])
        assert changed == (name in plan.head), name  # weight decay would move frozen ones too
    _train_steps(model, plan, epoch=2)
    assert all(not torch.equal(after[n], p) for n, p in model.named_parameters())


def test_freeze_by_pattern_and_module_prefix() -> None:
    config = _config("patchtst", freeze=["embed", "encoder.layers.*.self_attn.*"])
    model = _model(config)
    plan = apply_finetune(model, config)
    assert set(plan.frozen) == {"embed.weight", "embed.bias"} | {
        n for n, _ in model.named_parameters() if ".self_attn." in n
    }
    before = _snapshot(model)
    _train_steps(model, plan, epoch=5)
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters() if n in plan.frozen)


@pytest.mark.parametrize(
    ("finetune", "message"),
    [
        ({"freeze": ["encodr"]}, "finetune.freeze pattern 'encodr' matches no parameter"),
        ({"head": ["nope.*"]}, "finetune.head pattern 'nope.*' matches no parameter"),
        ({"freeze": ["backbone", "head"]}, "freezes every parameter and unfreeze_epoch is null"),
    ],
)
def test_bad_patterns_are_config_errors(finetune: dict, message: str) -> None:
    config = _config("patchtst", **finetune)
    with pytest.raises(ConfigError, match=message):
        apply_finetune(_model(config), config)


def test_param_groups_carry_head_and_backbone_lrs() -> None:
    config = _config(freeze=["backbone"], unfreeze_epoch=3, head_lr=0.02, backbone_lr=0.001)
    model = _model(config)
    groups = apply_finetune(model, config).param_groups(model)
    assert [(g["name"], g["lr"]) for g in groups] == [("head", 0.02), ("backbone_frozen", 0.001)]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    default = apply_finetune(_model(_config("dlinear")), _config("dlinear"))
    assert [g["name"] for g in default.param_groups(_model(_config("dlinear")))] == ["head"]


def test_warmup_ramps_each_group_from_its_first_step() -> None:
    config = _config(freeze=["backbone"], unfreeze_epoch=2, warmup_steps=4)
    model = _model(config)
    plan = apply_finetune(model, config)
    optimizer = torch.optim.AdamW(plan.param_groups(model), lr=0.01)
    seen = []
    for epoch in (1, 2):
        plan.start_epoch(epoch, steps_per_epoch=3)
        for _ in range(3):
            plan.before_step(model, optimizer)
            seen.append([round(g["lr"], 6) for g in optimizer.param_groups])
        if epoch == 1:
            optimizer.param_groups[1]["lr"] /= 2  # a plateau reduction while frozen is kept
    head = [s[0] for s in seen]
    backbone = [s[1] for s in seen]
    assert head == [0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01]
    assert backbone == [0.01, 0.01, 0.01, 0.00125, 0.0025, 0.00375]


def test_unfreeze_needs_freeze_in_config() -> None:
    with pytest.raises(ConfigError, match="unfreeze_epoch=3 needs finetune.freeze"):
        _config(unfreeze_epoch=3)
    with pytest.raises(ConfigError, match="finetune.head_lr"):
        _config(head_lr=0.0)


def test_init_from_must_be_a_checkpoint_or_run_id(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is a directory without best.pt"):
        resolve_parent(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="is not a checkpoint directory"):
        resolve_parent(str(tmp_path / "missing" / "dir"))
    with pytest.raises(ConfigError, match="is not a checkpoint directory"):
        resolve_parent("0123abcd")  # looks like a run id, but no downloader given


def test_parent_scalers_on_new_series_fail_with_the_fix(tmp_path: Path) -> None:
    parent_config = _config()
    parent_data = prepare_data(parent_config)
    parent = load_parent(
        _save_parent(
            tmp_path, parent_config, _model(parent_config), parent_data.scalers.state_dict()
        )
    )
    more = parent_config.model_copy(deep=True)
    more.data.synthetic.n_series = 5  # two series the parent never saw
    more.finetune.scalers = "parent"
    with pytest.raises(DataError, match="finetune.scalers=parent") as err:
        prepare_finetune_data(more, parent)
    assert "scalers: refit" in err.value.hint
    same = parent_config.model_copy(update={"finetune": more.finetune})
    reused = prepare_finetune_data(same, parent)
    assert reused.scalers.state_dict() == parent.scaler_state
    refit = prepare_finetune_data(
        more.model_copy(update={"finetune": parent_config.finetune}), parent
    )
    assert len(refit.scalers.series_ids) == 5


def test_lineage_names_parent_and_frozen_modules(tmp_path: Path) -> None:
    config = _config(freeze=["backbone"])
    parent = load_parent(
        _save_parent(tmp_path, config, _model(config), {}),
        source="abc",
        run_id="abc",
        uri="runs:/abc/checkpoint",
    )
    plan = check_finetune(config, DIMS, parent)
    record = lineage(parent, plan)
    assert (
        record["parent_run_id"] == "abc"
        and record["parent_checkpoint_uri"] == "runs:/abc/checkpoint"
    )
    assert record["frozen_modules"][:2] == ["blocks.0.mlp.0", "blocks.0.mlp.3"]
    assert "blocks.0.forecast" not in record["frozen_modules"] and record["loaded"] > 0
