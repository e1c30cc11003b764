"""Config models: defaults, strictness, YAML round trip and one-line errors with locations."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tsdl.config import (
    TsdlConfig,
    commented_default_yaml,
    config_hash,
    dump_config,
    load_config,
    parse_config,
    to_flat_dict,
)
from tsdl.errors import ConfigError


def test_defaults_are_the_training_template() -> None:
    cfg = TsdlConfig()
    assert (cfg.data.input_chunk_length, cfg.data.output_chunk_length) == (168, 24)
    t = cfg.training
    assert t.batch_size == 64
    assert (t.optimizer.lr, t.optimizer.weight_decay) == (1e-3, 1e-5)
    assert t.gradient_clip_val == 1.0
    assert (t.lr_scheduler.patience, t.lr_scheduler.factor) == (5, 0.5)
    assert cfg.model.dropout == 0.1
    assert (t.early_stopping.patience, t.early_stopping.monitor) == (15, "val_loss")
    assert t.seed == 42
    assert (t.pin_memory, t.log_every_n_steps, t.val_check_interval) == (True, 50, 1.0)


def test_commented_template_round_trips_to_defaults() -> None:
    text = commented_default_yaml()
    assert "# Lookback window length in timesteps." in text
    assert parse_config(yaml.safe_load(text)) == TsdlConfig()


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    cfg = parse_config({"model": {"name": "patchtst", "patch_len": 8}, "training": {"max_epochs": 3}})
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    again = load_config(path)
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)


def test_unknown_key_names_the_path_line_and_allowed_keys(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  max_epochs: 3\n  optimzer:\n    lr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert f"{path}:3" in msg and "training.optimzer" in msg and "optimizer" in msg


def test_a_removed_key_says_why_it_went(tmp_path: Path) -> None:
    # training.num_workers (loader threads) was documented but never read: there is no loader.
    path = tmp_path / "old.yaml"
    path.write_text("training:\n  num_workers: 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert f"{path}:2" in msg and "'training.num_workers' was removed" in msg and "resources.num_workers" in msg
    assert "num_workers" not in TsdlConfig().training.model_dump()


def test_out_of_range_value_names_value_and_range(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("training:\n  optimizer:\n    lr: -0.5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert f"{path}:3" in msg
    assert "training.optimizer.lr" in msg and "greater than 0" in msg and "-0.5" in msg


def test_bad_literal_lists_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"training\.precision.*'32', '16-mixed' or 'bf16-mixed'"):
        parse_config({"training": {"precision": "fp8"}})


def test_unknown_model_name_is_rejected() -> None:
    with pytest.raises(ConfigError, match="'dlinear', 'nhits', 'rnn', 'patchtst'"):
        parse_config({"model": {"name": "transformer9000"}})


def test_model_specific_fields_validated_per_architecture() -> None:
    with pytest.raises(ConfigError, match=r"model\.n_heads"):
        parse_config({"model": {"name": "patchtst", "n_heads": 0}})
    with pytest.raises(ConfigError, match=r"unknown key 'model\.n_heads'"):
        parse_config({"model": {"name": "dlinear", "n_heads": 2}})


def test_split_method_requires_its_fields() -> None:
    with pytest.raises(ConfigError, match="train_rows, val_rows and test_rows"):
        parse_config({"data": {"split": {"method": "rows", "train_rows": 10}}})
    with pytest.raises(ConfigError, match="below 1"):
        parse_config({"data": {"split": {"val_fraction": 0.5, "test_fraction": 0.5}}})


def test_overrides_parse_yaml_values() -> None:
    cfg = load_config(None, overrides=["training.optimizer.lr=3e-4", "model.name=rnn", "data.stride=4"])
    assert cfg.training.optimizer.lr == 3e-4 and cfg.model.name == "rnn" and cfg.data.stride == 4
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(None, overrides=["training.lr"])


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("training:\n  max_epochs: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_flat_dict_has_dotted_scalar_keys() -> None:
    flat = to_flat_dict(TsdlConfig())
    assert flat["training.optimizer.lr"] == 1e-3
    assert flat["model.name"] == "dlinear"
    assert all(not isinstance(v, dict | list) for v in flat.values())
