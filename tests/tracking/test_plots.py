"""The PNG writers produce valid images from realistic inputs and reject empty ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsdl.tracking import forecast_png, grad_norm_heatmap_png, learning_curve_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk; also checks the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_learning_curve_png(tmp_path: Path) -> None:
    history = [
        {"epoch": i, "train_loss": 1 / (i + 1), "val_loss": 1.2 / (i + 1), "lr": 1e-3}
        for i in range(6)
    ]
    history[2]["val_loss"] = float("nan")  # a gap, not a crash
    out = learning_curve_png(history, tmp_path / "plots" / "lc.png", marks={"best": 4})
    width, height = _png_size(out)
    assert width > 400 and height > 300
    with pytest.raises(ValueError, match="at least one epoch"):
        learning_curve_png([], tmp_path / "empty.png")


@pytest.mark.filterwarnings("error")
def test_learning_curve_png_of_a_run_whose_only_epoch_is_nan(tmp_path: Path) -> None:
    # What a run that failed on a non-finite loss in epoch 1 logged (`tsdl doctor --run-id` plots it).
    out = learning_curve_png([{"epoch": 1.0, "train_loss": float("nan")}], tmp_path / "lc.png",
                             marks={"divergence: non-finite": 1.0})
    assert _png_size(out)[0] > 400


def test_forecast_png(tmp_path: Path) -> None:
    t = pd.date_range("2021-01-01", periods=36, freq="h")
    y = np.sin(np.arange(36) / 4)
    examples = [
        {
            "uid": f"s{k}",
            "past_t": t[:24],
            "past_y": y[:24],
            "fut_t": t[24:],
            "y_true": y[24:],
            "y_pred": y[24:] + 0.1,
            "lo": y[24:] - 0.5 if k else None,
            "hi": y[24:] + 0.5 if k else None,
        }
        for k in range(8)
    ]
    out = forecast_png(examples, tmp_path / "fc.png")
    _, height = _png_size(out)
    single = forecast_png(examples[:1], tmp_path / "fc1.png")
    assert height > _png_size(single)[1]  # one panel per example (capped), taller image


def test_grad_norm_heatmap_png(tmp_path: Path) -> None:
    norms = {"encoder.weight": [1.0, 0.5, 0.1], "head.bias": [0.0, 1e-4, 1e-3]}
    out = grad_norm_heatmap_png(norms, [10, 20, 30], tmp_path / "gn.png")
    _png_size(out)
    with pytest.raises(ValueError, match="one norm per step"):
        grad_norm_heatmap_png({"a": [1.0]}, [1, 2], tmp_path / "bad.png")
