"""What a config file or --set may hold: text stays text, sizes and alias expansion are bounded,
values in messages are cut, and every name that becomes a path follows one pattern."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tsdl.config import load_config, parse_config
from tsdl.config.names import NAME_MAX_LENGTH, check_name
from tsdl.config.text import brief
from tsdl.config.yaml_text import MAX_CONFIG_BYTES
from tsdl.errors import ConfigError

BOMB = "\n".join(
    ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
       f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]" for i in range(8)]
)
"""'Billion laughs': 9 ** 9 strings once every alias is expanded, a few hundred bytes written."""


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("yaml_text", "field", "expected"),
    [
        ("deploy: {namespace: 0123}\n", ("deploy", "namespace"), "0123"),  # YAML 1.1 octal: 83
        ("deploy: {namespace: 2024}\n", ("deploy", "namespace"), "2024"),
        ("training: {precision: 32}\n", ("training", "precision"), "32"),
        ("experiment: {tags: {version: 1.10, ok: yes}}\n", ("experiment", "tags"), {"version": "1.10", "ok": "yes"}),
        ("data: {series_cols: [2024, 0x1F, 1:30]}\n", ("data", "series_cols"), ["2024", "0x1F", "1:30"]),
        ("data: {time_col: 2020-01-01}\n", ("data", "time_col"), "2020-01-01"),
    ],
)
def test_text_fields_keep_what_the_file_says(tmp_path: Path, yaml_text: str, field: tuple[str, str], expected) -> None:
    config = load_config(_config_file(tmp_path, yaml_text))
    assert getattr(getattr(config, field[0]), field[1]) == expected


@pytest.mark.parametrize(
    ("override", "field", "expected"),
    [
        ("deploy.namespace=0123", ("deploy", "namespace"), "0123"),
        ("deploy.namespace=2024", ("deploy", "namespace"), "2024"),
        ("training.precision=32", ("training", "precision"), "32"),
        ("data.series_cols=[2024, 007]", ("data", "series_cols"), ["2024", "007"]),
        ("training.max_epochs=0012", ("training", "max_epochs"), 10),  # a number field stays YAML's
    ],
)
def test_text_fields_keep_what_set_says(override: str, field: tuple[str, str], expected) -> None:
    config = parse_config({}, overrides=[override])
    assert getattr(getattr(config, field[0]), field[1]) == expected


def test_a_set_beats_the_file_for_the_text_it_keeps(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "deploy: {namespace: 0777}\n")
    assert load_config(path, overrides=["deploy.namespace=0123"]).deploy.namespace == "0123"


@pytest.mark.parametrize("value", ["#x.csv", "null", "~", "2024", "yes", "[1].csv", "a: b"])
def test_a_key_value_pair_is_never_read_as_yaml(value: str) -> None:
    """What a flag (`-n`, check-data's FILE) gives is taken as is."""
    assert parse_config({}, overrides=[("data.path", value)]).data.path == value


@pytest.mark.parametrize("where", ["file", "set"])
def test_an_alias_bomb_is_refused_quickly(tmp_path: Path, where: str) -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than") as info:
        if where == "file":
            load_config(_config_file(tmp_path, f"experiment:\n  tags:\n    x: y\nlaughs:\n{_indent(BOMB)}\n"))
        else:
            parse_config({}, overrides=["experiment.tags={" + BOMB.replace("\n", ", ") + "}"])
    assert time.monotonic() - start < 5
    assert len(str(info.value)) < 400


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def test_a_huge_config_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_CONFIG_BYTES + 1)  # sparse: no disk used
    with pytest.raises(ConfigError, match="at most"):
        load_config(path)


@pytest.mark.parametrize("depth", [40, 900, 50_000])
def test_deep_nesting_is_one_error(tmp_path: Path, depth: int) -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError, match="nested|nesting"):
        load_config(_config_file(tmp_path, "data: " + "[" * depth + "]" * depth + "\n"))
    assert time.monotonic() - start < 2


def test_an_unsupported_tag_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported YAML"):
        load_config(_config_file(tmp_path, "data: !!python/object:os.system x\n"))


@pytest.mark.parametrize(
    "override",
    [
        "training.seed=" + "9" * 100_000,
        "deploy.namespace=" + "x" * 1_000_000 + "!",
        "experiment." + "k" * 100_000 + "=1",
        "data.series_cols=[" + ",".join(["[1]"] * 20_000) + "]",
    ],
)
def test_messages_show_a_bounded_part_of_any_value(override: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({}, overrides=[override])
    assert len(info.value.one_line()) < 600


def test_brief_is_bounded_for_self_referencing_values() -> None:
    loop: list = [1]
    loop.append(loop)
    nested = [[["x" * 10**6] * 10**3] * 10**3]
    assert len(brief(loop)) <= 80 and len(brief(nested)) <= 80
    assert brief("x" * 200).endswith("(200 chars)")


@pytest.mark.parametrize(
    "name",
    ["../../x", "..", ".", "a/b", "a\\b", "-rf", ".hidden", "a b", "a;rm", "$(id)", "naïve", "日本",
     "", "x" * (NAME_MAX_LENGTH + 1), "a\nb", "a\x00b"],
)
def test_names_outside_the_pattern_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="not a valid name"):
        check_name(name, "--run-name")
    with pytest.raises(ConfigError, match="experiment.name: not a valid name"):
        parse_config({"experiment": {"name": name}})
    with pytest.raises(ConfigError, match="tracking.experiment_name: not a valid name"):
        parse_config({"tracking": {"experiment_name": name}})


@pytest.mark.parametrize("name", ["etth1", "ETTh1-dlinear_2", "a.b", "a..b", "9lives", "x" * NAME_MAX_LENGTH])
def test_names_inside_the_pattern_pass(name: str) -> None:
    assert check_name(name, "--run-name") == name
    assert parse_config({"experiment": {"name": name}}).experiment.name == name
