"""Search space: dotted paths, 'Nx' lookbacks, priority freezing, reference point, stage-2 narrowing."""

from __future__ import annotations

import math

import pytest

from tsdl.config import TsdlConfig
from tsdl.config.tune import ChoiceParam, FloatParam, IntParam
from tsdl.errors import ConfigError, TuneError
from tsdl.tune.space import (
    PRIORITY,
    apply_params,
    narrow_space,
    reference_point,
    resolve_value,
    select_space,
    to_tune_space,
)


def _config(**sections) -> TsdlConfig:
    return TsdlConfig.model_validate(sections)


def test_nx_lookback_is_a_multiple_of_the_horizon() -> None:
    config = _config(data={"output_chunk_length": 24})
    assert resolve_value("data.input_chunk_length", "4x", config) == 96
    assert resolve_value("data.input_chunk_length", 50, config) == 50
    assert resolve_value("model.hidden_size", "4x", config) == "4x"  # only the lookback knows 'Nx'
    with pytest.raises(TuneError, match="'fourx'"):
        resolve_value("data.input_chunk_length", "fourx", config)


def test_apply_params_sets_dotted_paths_and_revalidates() -> None:
    config = _config(data={"output_chunk_length": 12})
    trial = apply_params(config, {"training.optimizer.lr": 3e-3, "data.input_chunk_length": "2x"})
    assert trial.training.optimizer.lr == 3e-3
    assert trial.data.input_chunk_length == 24
    assert config.training.optimizer.lr != 3e-3  # the base config is untouched
    with pytest.raises(TuneError, match="'model.n_heads' is not a field .*'dlinear'"):
        apply_params(config, {"model.n_heads": 4})
    with pytest.raises(ConfigError, match="invalid config"):
        apply_params(config, {"model.dropout": 1.5})


def test_dlinear_freezes_unused_params_and_budget_freezes_by_priority() -> None:
    active = select_space(_config(), max_params=None)
    assert "model.hidden_size" in active.frozen and "model.dropout" in active.frozen
    assert list(active.params) == ["training.optimizer.lr", "data.input_chunk_length", "training.batch_size"]

    nhits = _config(model={"name": "nhits"})
    small = select_space(nhits, max_params=2)
    assert list(small.params) == list(PRIORITY[:2])
    assert set(small.frozen) == set(PRIORITY[2:])
    assert all("2-param budget" in why for why in small.frozen.values())


def test_architecture_params_rank_after_the_playbook_ones() -> None:
    space = {
        "model.n_blocks": {"type": "int", "low": 1, "high": 4},
        "training.optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    }
    config = _config(model={"name": "nhits"}, tune={"search_space": space})
    assert list(select_space(config, max_params=None).params) == ["training.optimizer.lr", "model.n_blocks"]
    assert list(select_space(config, max_params=1).frozen) == ["model.n_blocks"]


def test_reference_point_is_the_configs_own_values() -> None:
    config = _config(data={"input_chunk_length": 168, "output_chunk_length": 24}, training={"batch_size": 48})
    space = select_space(config, max_params=None).params
    point, widened = reference_point(config, space)
    assert point["data.input_chunk_length"] == "7x"  # matched to the choice that resolves to 168
    assert point["training.optimizer.lr"] == config.training.optimizer.lr
    assert point["training.batch_size"] == 48
    assert 48 in widened["training.batch_size"].values  # added so trial 0 is representable
    far = _config(training={"optimizer": {"lr": 0.5}})
    _, stretched = reference_point(far, select_space(far, max_params=None).params)
    assert stretched["training.optimizer.lr"].high == 0.5


def test_narrowing_follows_the_documented_rule() -> None:
    space = {
        "lr": FloatParam(low=1e-4, high=1e-1, log=True),
        "dropout": FloatParam(low=0.0, high=0.4),
        "layers": IntParam(low=1, high=8),
        "batch": ChoiceParam(values=[32, 64, 128]),
    }
    top = [{"lr": 1e-3, "dropout": 0.1, "layers": 3, "batch": 64}, {"lr": 1e-2, "dropout": 0.2, "layers": 4, "batch": 32}]
    narrow = narrow_space(space, top)
    span = math.log(1e-2) - math.log(1e-3)
    assert narrow["lr"].low == pytest.approx(math.exp(math.log(1e-3) - 0.25 * span))
    assert narrow["lr"].high == pytest.approx(math.exp(math.log(1e-2) + 0.25 * span))
    assert narrow["dropout"].low == pytest.approx(0.075) and narrow["dropout"].high == pytest.approx(0.225)
    assert (narrow["layers"].low, narrow["layers"].high) == (2, 5)  # [2.75, 4.25] rounded outwards
    assert narrow["batch"].values == [32, 64]  # original order kept
    same = narrow_space(space, [{"dropout": 0.0}])  # all top-k agree: 10 % of the range, clipped
    assert (same["dropout"].low, same["dropout"].high) == (0.0, pytest.approx(0.04))


def test_tune_domains_match_the_specs() -> None:
    from ray.tune.search.sample import Categorical, Float, Integer

    domains = to_tune_space(
        {"a": FloatParam(low=1e-4, high=1e-2, log=True), "b": IntParam(low=1, high=3), "c": ChoiceParam(values=["2x"])}
    )
    assert isinstance(domains["a"], Float) and domains["a"].lower == 1e-4
    assert isinstance(domains["b"], Integer) and domains["b"].upper == 4  # inclusive high
    assert isinstance(domains["c"], Categorical) and domains["c"].categories == ["2x"]


def test_asha_never_cuts_the_reference_before_max_epochs() -> None:
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from tsdl.tune.budget import plan_study
    from tsdl.tune.runner import build_scheduler

    plan = plan_study(_config(), "smoke")  # grace 1, factor 2, max 4 epochs
    scheduler = build_scheduler(plan, reference={"lr": 1e-3})
    good = [SimpleNamespace(trial_id=f"g{i}", config={"lr": 1e-2}) for i in range(3)]
    reference = SimpleNamespace(trial_id="ref", config={"lr": 1e-3})
    other = SimpleNamespace(trial_id="other", config={"lr": 3e-2})
    for trial in [*good, reference, other]:
        scheduler.on_trial_add(None, trial)
    for i, trial in enumerate(good):
        scheduler.on_trial_result(None, trial, {"epoch": 1, "val_loss": 0.1 + i / 100})
    assert scheduler.on_trial_result(None, other, {"epoch": 1, "val_loss": 5.0}) == TrialScheduler.STOP
    assert scheduler.on_trial_result(None, reference, {"epoch": 1, "val_loss": 5.0}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, reference, {"epoch": 4, "val_loss": 5.0}) == TrialScheduler.STOP
