"""classify_curves on synthetic curves of each class, and the playbook remedies they map to."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tsdl.config import parse_config
from tsdl.doctor import CurveThresholds, Finding, Remedy, classify_curves, remedies_for

EPOCHS = np.arange(1, 16, dtype=float)


def _history(train, val) -> list[dict[str, float]]:
    return [
        {"epoch": float(e), "train_loss": float(t), "val_loss": float(v)}
        for e, t, v in zip(EPOCHS[: len(train)], train, val, strict=True)
    ]


def _decay(start: float, floor: float, rate: float = 0.4) -> np.ndarray:
    return floor + (start - floor) * np.exp(-rate * (EPOCHS - 1))


def test_healthy_curve() -> None:
    train = _decay(1.0, 0.10)
    d = classify_curves(_history(train, train * 1.08), reference_loss=0.5)
    assert d.kind == "healthy"
    assert remedies_for(d.kind) == ()


def test_non_finite_loss_is_divergence_at_its_epoch() -> None:
    train = _decay(1.0, 0.1)
    history = _history(train, train)
    history[6]["val_loss"] = math.nan
    d = classify_curves(history)
    assert d.kind == "divergence"
    assert d.marks == {"non-finite": 7.0}


def test_growing_loss_is_divergence() -> None:
    train = np.concatenate([_decay(1.0, 0.5)[:5], np.geomspace(0.6, 40.0, 10)])
    d = classify_curves(_history(train, train * 1.1))
    assert d.kind == "divergence"
    assert "grew" in d.summary


def test_oscillating_curve() -> None:
    zigzag = 0.4 + 0.15 * (-1.0) ** EPOCHS
    d = classify_curves(_history(zigzag + 0.2 * np.exp(-EPOCHS), zigzag * 1.1))
    assert d.kind == "oscillating"
    assert "reversed direction" in d.summary


def test_small_noise_is_not_oscillation() -> None:
    rng = np.random.default_rng(0)
    train = _decay(1.0, 0.2) * (1 + 0.01 * rng.standard_normal(len(EPOCHS)))
    assert classify_curves(_history(train, train * 1.05)).kind == "healthy"


def test_flat_loss_is_not_decreasing() -> None:
    train = 1.0 - 0.001 * (EPOCHS - 1)
    d = classify_curves(_history(train, train + 0.01), reference_loss=0.2)
    assert d.kind == "not_decreasing"
    assert "fell only" in d.summary


def test_flat_but_already_good_is_not_flagged() -> None:
    # Converged in the first epoch and far better than the naive forecast: nothing to fix.
    train = 0.05 - 0.0001 * (EPOCHS - 1)
    assert classify_curves(_history(train, train * 1.05), reference_loss=0.5).kind == "healthy"


def test_overfitting_marks_the_epoch_val_turns() -> None:
    train = _decay(1.0, 0.02)
    val = _decay(1.0, 0.3) + 0.03 * np.maximum(EPOCHS - 7, 0) ** 1.5
    d = classify_curves(_history(train, val))
    assert d.kind == "overfitting"
    turn = int(np.argmin(val)) + 1
    assert d.marks == {"val rises": float(turn)}


def test_underfitting_needs_a_reference() -> None:
    train = _decay(1.0, 0.48)
    history = _history(train, train * 1.02)
    d = classify_curves(history, reference_loss=0.5)
    assert d.kind == "underfitting"
    assert d.plateaued
    without = classify_curves(history)
    assert without.kind == "healthy"
    assert any("not judged" in line for line in without.evidence)


def test_too_few_epochs() -> None:
    d = classify_curves(_history([1.0, 0.5], [1.0, 0.6]))
    assert d.kind == "too_short"


def test_thresholds_are_the_only_knobs() -> None:
    train = _decay(1.0, 0.10)
    val = train * 1.0
    val[-3:] = val[-4] * np.array([1.01, 1.02, 1.04])  # a 4% rise: under 5%, over a stricter 2%
    assert classify_curves(_history(train, val)).kind == "healthy"
    strict = CurveThresholds(overfit_rise=0.02)
    assert classify_curves(_history(train, val), thresholds=strict).kind == "overfitting"


@pytest.mark.parametrize(
    ("kind", "key", "expected"),
    [
        ("divergence", "training.optimizer.lr", "0.0003"),
        ("oscillating", "training.optimizer.lr", "0.001"),
        ("oscillating", "training.batch_size", "128"),
        ("overfitting", "model.dropout", "0.3"),
        ("overfitting", "model.hidden_size", "32"),
        ("overfitting", "training.augment.window_jitter", "6"),
        ("overfitting", "training.augment.magnitude_scaling", "0.1"),
        ("underfitting", "model.hidden_size", "128"),
        ("underfitting", "data.input_chunk_length", "96"),
        ("not_decreasing", "tracking.log_per_layer_grad_norms", "true"),
    ],
)
def test_remedies_name_concrete_keys_and_values(kind, key, expected) -> None:
    config = parse_config(
        {
            "data": {"input_chunk_length": 48, "output_chunk_length": 24},
            "model": {"name": "nhits", "hidden_size": 64, "dropout": 0.2},
            "training": {"optimizer": {"lr": 0.003}, "batch_size": 64},
        }
    )
    by_key = {r.key: r for r in remedies_for(kind, config)}
    assert by_key[key].suggested == expected
    assert by_key[key].set_override() == f"{key}={expected}"


def test_underfitting_puts_train_longer_first_when_still_improving() -> None:
    config = parse_config({"model": {"name": "rnn"}})
    assert remedies_for("underfitting", config, plateaued=False)[0].key == "training.max_epochs"
    assert remedies_for("underfitting", config, plateaued=True)[0].key == "model.hidden_size"


def test_loss_far_above_the_reference_is_divergence() -> None:
    rng = np.random.default_rng(1)
    train = 300 * (1 + 0.1 * rng.standard_normal(len(EPOCHS))) * np.linspace(1.5, 1.0, len(EPOCHS))
    d = classify_curves(_history(train, train * 0.9), reference_loss=0.3)
    assert d.kind == "divergence"
    assert "seasonal-naive" in d.summary


_KINDS = ("divergence", "not_decreasing", "oscillating", "overfitting", "underfitting", "too_short")

# A run already at the values the playbook would suggest: full precision, dropout at the cap,
# per-layer grad norms on, the suggested augmentations and calendar features, patience 1.
_AT_THE_SUGGESTIONS = {
    "data": {"input_chunk_length": 48, "output_chunk_length": 24,
             "covariates": {"calendar": ["hour", "dayofweek"]}},
    "model": {"name": "nhits", "hidden_size": 64, "dropout": 0.5},
    "training": {"precision": "32", "early_stopping": {"enabled": True, "patience": 1},
                 "augment": {"window_jitter": 6, "magnitude_scaling": 0.1}},
    "tracking": {"log_per_layer_grad_norms": True},
}


@pytest.mark.parametrize("kind", _KINDS)
def test_no_remedy_suggests_the_value_the_run_already_has(kind) -> None:
    """A step like `training.precision: 32 -> "32"` changes nothing; values compare as YAML."""
    import yaml

    config = parse_config(_AT_THE_SUGGESTIONS)
    for remedy in remedies_for(kind, config, plateaued=True) + remedies_for(kind, config, plateaued=False):
        if remedy.current is not None and remedy.suggested is not None:
            same = str(yaml.safe_load(remedy.current)) == str(yaml.safe_load(remedy.suggested))
            assert not same, remedy.render()


def test_full_precision_is_a_divergence_remedy_only_for_mixed_precision_runs() -> None:
    def precision_steps(precision: str) -> list[str]:
        config = parse_config({"training": {"precision": precision}})
        return [r.render() for r in remedies_for("divergence", config) if r.key == "training.precision"]

    assert precision_steps("32") == []
    assert precision_steps("bf16-mixed") == ['use full precision while debugging (training.precision: bf16-mixed -> "32")']
    assert precision_steps("16-mixed") == ['use full precision while debugging (training.precision: 16-mixed -> "32")']
    assert [r.key for r in remedies_for("divergence", parse_config({}))][:2] == [
        "training.optimizer.lr", "training.gradient_clip_val"]


def test_a_finding_drops_remedies_that_keep_the_current_value() -> None:
    """Remedies built outside the playbook (preflight's `data.scaler: standard -> standard`) too."""
    keep = Remedy("scale every channel per series", "data.scaler", "none", "standard")
    same = Remedy("scale every channel per series", "data.scaler", "standard", "standard")
    command = Remedy("re-run the data checklist: `tsdl check-data -c CONFIG`")
    finding = Finding("value_scale", "warn", "unscaled", remedies=(same, keep, command))
    assert finding.remedies == (keep, command)
    assert Remedy("more dropout", "model.dropout", "0.50", "0.5").changes_nothing
    assert not Remedy("more dropout", "model.dropout", "0.4", "0.5").changes_nothing


def test_best_after_the_first_epoch_then_flat_val_is_overfitting_from_the_start() -> None:
    """N-HiTS at H=720 on ETTh1 (docs/benchmarks.md): the first epoch is the best, val then barely
    moves (< overfit_rise) while train keeps falling; the old rule called that healthy."""
    train, val = [0.62, 0.50, 0.44, 0.41], [1.30, 1.33, 1.34, 1.35]
    d = classify_curves(_history(train, val), reference_loss=1.25)
    assert d.kind == "overfitting"
    assert "overfits from the first epoch" in d.summary and d.marks == {"val rises": 1.0}
    assert any("seasonal naive" in line for line in d.evidence)  # worse than the reference, said so
    # A model still improving on val after epoch 1 is not flagged by this rule.
    assert classify_curves(_history(train, [1.30, 1.29, 1.31, 1.32])).kind != "overfitting"
