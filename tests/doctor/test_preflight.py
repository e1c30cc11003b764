"""Pre-flight checks on real data, models and losses, each with a deliberately broken variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tsdl.data import prepare_data
from tsdl.doctor import run_preflight
from tsdl.doctor.preflight import overfit_one_batch
from tsdl.losses import build_loss
from tsdl.models import build_model
from tsdl.train import model_dims

FAST = {"overfit_steps": 150, "probe_steps": 5, "lr_steps": 0}


def _by_check(report):
    return {f.check: f for f in report.findings}


def test_healthy_setup_passes_every_check(make_config, tmp_path: Path) -> None:
    config = make_config(training__optimizer={"lr": 3e-3})  # Adam's usual lr for a linear model
    report = run_preflight(config, out_dir=tmp_path, overfit_steps=150, probe_steps=5, lr_steps=80)
    checks = _by_check(report)
    assert list(checks) == [
        "data_checklist", "first_batch", "value_scale", "overfit_one_batch",
        "gradient_flow", "gradient_scale", "lr_range_test",
    ]
    assert report.ok, report.render()
    assert all(f.status == "pass" for f in report.findings), report.render()
    assert (tmp_path / "grad_norms.png").exists() and (tmp_path / "lr_find.png").exists()
    markdown = report.to_markdown()
    assert "| overfit_one_batch | **pass** |" in markdown


def test_nan_in_one_input_fails_the_first_batch_and_stops(make_config) -> None:
    config = make_config()
    prepared = prepare_data(config)
    train = prepared.windows("train")
    train.data[5, 0] = np.nan  # one lookback value of the first window
    report = run_preflight(config, prepared=prepared, **FAST)
    first = _by_check(report)["first_batch"]
    assert first.status == "fail"
    assert "NaN/inf value(s) in past: y (" in first.summary  # the channel is named
    assert "overfit_one_batch" not in _by_check(report)
    assert any("stopped after the first batch" in note for note in report.notes)


class _DetachedTrend(torch.nn.Module):
    """DLinear whose trend branch is cut from the graph (a classic .detach() bug)."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, past, future, static):
        seasonal, trend = self.inner.decomposition(past[..., 0])
        out = self.inner.seasonal(seasonal) + self.inner.trend(trend).detach()
        return self.inner._reshape_head(out)


def test_detached_layer_is_a_parameter_without_gradient(make_config) -> None:
    config = make_config()
    prepared = prepare_data(config)
    loss = build_loss(config.loss)

    def make_model():
        return _DetachedTrend(build_model(config.model, **model_dims(prepared), loss=loss))

    report = run_preflight(config, prepared=prepared, make_model=make_model, **FAST)
    flow = _by_check(report)["gradient_flow"]
    assert flow.status == "fail"
    assert "inner.trend.weight" in flow.evidence[0] and "inner.trend.bias" in flow.evidence[0]
    assert "inner.seasonal.weight" not in flow.evidence[0]


class _IgnoresInput(torch.nn.Module):
    """Outputs a learned constant per horizon step: a wiring bug that no lr can fix."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.level = torch.nn.Parameter(torch.zeros(horizon, 1))

    def forward(self, past, future, static):
        return self.level.expand(past.shape[0], -1, -1)


def test_overfit_one_batch_catches_a_model_that_ignores_its_input(make_config) -> None:
    config = make_config()
    prepared = prepare_data(config)
    batch = prepared.windows("train").batch_at(np.arange(32))
    loss = build_loss(config.loss)
    broken = overfit_one_batch(lambda: _IgnoresInput(12), loss, batch, steps=100)
    assert broken.status == "fail"
    assert len(broken.evidence) == 3  # every lr was tried
    fine = overfit_one_batch(
        lambda: build_model(config.model, **model_dims(prepared), n_outputs=1), loss, batch, steps=150
    )
    assert fine.status == "pass"


def test_unscaled_inputs_are_flagged(make_config) -> None:
    report = run_preflight(make_config(data__scaler="none"), **FAST)
    scale = _by_check(report)["value_scale"]
    assert scale.status == "warn"
    assert "past:y" in scale.summary and "target" in scale.summary
    assert scale.remedies[0].set_override() == "data.scaler=standard"


@pytest.mark.parametrize(("lr", "status", "side"), [(5.0, "fail", "above"), (1e-7, "warn", "below")])
def test_configured_lr_outside_the_good_range(make_config, lr, status, side) -> None:
    config = make_config(training__optimizer={"lr": lr})
    report = run_preflight(config, overfit_steps=50, probe_steps=3, lr_steps=80)
    finding = _by_check(report)["lr_range_test"]
    assert finding.status == status
    assert side in finding.summary
    assert finding.remedies[0].key == "training.optimizer.lr"


def test_failed_data_checklist_stops_the_doctor(make_config, tmp_path: Path) -> None:
    times = pd.date_range("2024-01-01", periods=200, freq="h")
    values = np.sin(np.arange(200) / 4.0)
    values[50] = np.nan
    path = tmp_path / "gappy.csv"
    pd.DataFrame({"ds": times, "y": values}).to_csv(path, index=False)
    config = make_config(data__path=str(path), data__layout="wide", data__missing="fail")
    report = run_preflight(config, **FAST)
    assert [f.check for f in report.findings] == ["data_checklist"]
    assert report.findings[0].status == "fail" and not report.ok
