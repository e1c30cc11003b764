"""The RSS scaling study behind ``bench_window_memory.py --scaling``.

Each case runs in a fresh interpreter (``--case N_SERIES TIMESTEPS``) so that one case's freed
but retained heap never inflates the next one's peak. A case measures, after the imports, the
peak RSS of: ``prepare_data`` on a synthetic dataset, the Ray row encoding of the train windows
and their decoding into a worker's ``WindowSet`` (what ``TorchTrainer`` workers do, without
Ray's object store), and one DLinear epoch over every training window.

Peak RSS grows with the flat ``[T, F]`` arrays (a few copies: pandas frame, scaled array,
encoded rows); windows are never materialized, so ``materialized_mb`` (what a
``[W, L + H]`` tensor would take) is only there for contrast.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common

__all__ = ["measure_case", "run_study"]

_L, _H = 96, 24
# (n_series, timesteps per series): 1x / 10x / 100x the timesteps of 10 series, then the
# 1,000-series case with as many rows as the 100x one (2M) but 100x more, shorter, series.
_CASES = [(10, 2_000), (10, 20_000), (10, 200_000), (1_000, 2_000)]
_SMOKE_CASES = [(2, 400), (2, 4_000)]


def _rss_mb() -> tuple[float, float]:
    """(current, peak) RSS in MiB from /proc (Linux); peak falls back to getrusage."""
    current = peak = 0.0
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024.0
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return current, max(peak, _common.peak_rss_mb() if not peak else 0.0)


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_case(
    n_series: int, timesteps: int, *, input_chunk_length: int, output_chunk_length: int, batch_size: int
) -> None:
    """Run one case in this process and print its JSON line (peaks relative to post-import RSS)."""
    import torch

    from tsdl.data import prepare_data
    from tsdl.data.ray_data import encode_rows, windows_from_rows
    from tsdl.losses import build_loss
    from tsdl.models import build_model
    from tsdl.train import model_dims

    torch.set_num_threads(1)
    config = _common.synthetic_config(
        n_series=n_series,
        n_timesteps=timesteps,
        input_chunk_length=input_chunk_length,
        output_chunk_length=output_chunk_length,
    )
    _warm_up(config, input_chunk_length, output_chunk_length, batch_size)
    base, _ = _rss_mb()
    exact = _reset_peak()
    started = time.perf_counter()
    prepared = prepare_data(config)
    train = prepared.windows("train")
    _, after_prepare = _rss_mb()
    rows = encode_rows(train, num_workers=1)
    worker = windows_from_rows(
        rows, input_chunk_length=input_chunk_length, output_chunk_length=output_chunk_length
    )
    del rows
    _, after_shard = _rss_mb()
    loss_fn = build_loss(config.loss)
    model = build_model(config.model, **model_dims(prepared), loss=loss_fn)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for batch in worker.batches(batch_size, shuffle=True, seed=0):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(batch.past, batch.future, batch.static), batch.target).backward()
        optimizer.step()
    _, peak = _rss_mb()
    n_features = prepared.n_past_features
    raw_mb = n_series * timesteps * n_features * 4 / 2**20
    print(json.dumps({
        "n_series": n_series,
        "timesteps_per_series": timesteps,
        "rows": n_series * timesteps,
        "train_windows": len(train),
        "raw_mb": raw_mb,
        "materialized_mb": len(train) * (input_chunk_length + output_chunk_length) * n_features * 4 / 2**20,
        "baseline_rss_mb": base,
        "prepare_peak_mb": after_prepare - base,
        "shard_peak_mb": after_shard - base,
        "epoch_peak_mb": peak - base,
        "peak_over_raw": (peak - base) / max(raw_mb, 1e-9),
        "exact_peak": exact,
        "seconds": time.perf_counter() - started,
    }), flush=True)


def _warm_up(config, input_chunk_length: int, output_chunk_length: int, batch_size: int) -> None:
    """One step on random data, so torch's one-time allocations (kernels, autograd, allocator
    arenas, about 80 MiB) land in the baseline rather than in the first case's peak."""
    import torch

    from tsdl.losses import build_loss
    from tsdl.models import build_model

    loss_fn = build_loss(config.loss)
    model = build_model(config.model, input_chunk_length=input_chunk_length,
                        output_chunk_length=output_chunk_length, n_past_features=1,
                        n_future_features=0, n_static=0, loss=loss_fn)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    past = torch.randn(batch_size, input_chunk_length, 1)
    pred = model(past, past.new_zeros(batch_size, output_chunk_length, 0), past.new_zeros(batch_size, 0))
    loss_fn(pred, torch.randn(batch_size, output_chunk_length)).backward()
    optimizer.step()


def run_study(script: Path, *, smoke: bool, out: Path | None, batch_size: int) -> dict[str, Any]:
    """Run every case in a subprocess of ``script``; print the table, write JSON and a PNG."""
    cases = _SMOKE_CASES if smoke else _CASES
    rows: list[dict[str, Any]] = []
    for n_series, timesteps in cases:
        cmd = [sys.executable, str(script), "--case", str(n_series), str(timesteps),
               "--input-chunk-length", str(_L), "--output-chunk-length", str(_H),
               "--batch-size", str(batch_size)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"case {n_series}x{timesteps} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"case {n_series} series x {timesteps:,} steps: {rows[-1]['epoch_peak_mb']:.1f} MiB", flush=True)
    first = rows[0]
    for row in rows:
        row["rows_x"] = row["rows"] / first["rows"]
        row["windows_x"] = row["train_windows"] / first["train_windows"]
        row["peak_x"] = row["epoch_peak_mb"] / max(first["epoch_peak_mb"], 1e-9)
    columns = ["n_series", "timesteps_per_series", "train_windows", "raw_mb", "materialized_mb",
               "prepare_peak_mb", "shard_peak_mb", "epoch_peak_mb", "peak_over_raw", "rows_x", "peak_x"]
    _common.print_table(rows, columns, title=f"peak RSS above post-import baseline (L={_L}, H={_H})")
    out = out or _common.RESULTS
    payload = {"settings": {"input_chunk_length": _L, "output_chunk_length": _H, "batch_size": batch_size},
               "cases": rows}
    _common.write_results("memory_scaling", payload, out, smoke=smoke)
    _plot(rows, out / f"memory_scaling{'.smoke' if smoke else ''}.png")
    return payload


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ten = [r for r in rows if r["n_series"] == rows[0]["n_series"]]
    other = [r for r in rows if r["n_series"] != rows[0]["n_series"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [r["rows"] for r in ten]
    ax.loglog(x, [r["epoch_peak_mb"] for r in ten], "o-", label=f"tsdl peak RSS ({ten[0]['n_series']} series)")
    ax.loglog(x, [r["raw_mb"] for r in ten], "k--", label="raw float32 data")
    ax.loglog(x, [r["materialized_mb"] for r in ten], "r:", label="materialized windows (not allocated)")
    for r in other:
        ax.loglog([r["rows"]], [r["epoch_peak_mb"]], "s", label=f"tsdl peak RSS ({r['n_series']} series)")
    ax.set_xlabel("total timesteps (rows)")
    ax.set_ylabel("MiB above post-import RSS")
    ax.set_title("Memory: prepare_data + shard + one epoch")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", flush=True)
