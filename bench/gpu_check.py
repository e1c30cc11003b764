"""`make gpu-check`: everything that needs a CUDA GPU, in one command, in under 5 minutes.

No GPU has been lent to this project yet, and when one is there may be only minutes, so this is
the one script to send to it. Steps:

1. ``tests``: ``pytest -m gpu tests/**/test_gpu*.py`` (AMP at every precision, the pinned-memory transfer, and
   deterministic CUDA ops for every model and loss); any failure, error or skip is a failure.
2. ``precision``: DLinear and PatchTST (the ``examples/etth1-*.yaml`` architectures, L=336,
   H=96) at batch ``--batch-size`` (256) on device-resident synthetic windows: windows/s and
   peak GPU memory in fp32, bf16-mixed and 16-mixed, through tsdl's own ``MixedPrecision``
   (autocast, GradScaler for fp16), AdamW and clipping. Every precision trains from the same
   initial weights on the same batches; the losses must agree with fp32's (``_TOLERANCE``).

Writes ``<out>/gpu_check.json`` and a short table; exits 1 if any step failed. Without CUDA it is
a dry run: each step builds what it would run (configs and models parsed, GPU tests collected,
so CI notices when the script rots), then is skipped with its reason; exit 0.

    make gpu-check                      # = python bench/gpu_check.py
    python bench/gpu_check.py --batch-size 512 --steps 200
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
MODELS = {"dlinear": "etth1-dlinear.yaml", "patchtst": "etth1-patchtst.yaml"}
_TOLERANCE = {"first_step_rel": 0.02, "final_rel": 0.05}
"""Mixed-precision loss vs fp32, relative: the first step's loss (same weights, same batch: only
rounding differs; bf16 keeps ~3 significant digits) and the mean of the last 10 steps' losses
(after training, where rounding has compounded through the updates)."""
_TEST_TIMEOUT_S = 210
GPU_TESTS = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "tests").rglob("test_gpu*.py"))
"""Where ``-m gpu`` tests live (collecting only these keeps the step off the rest of the suite's imports)."""
_L, _H = 336, 96

__all__ = ["main", "precision_run"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="timed training steps per precision")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--skip-tests", action="store_true", help="only the precision step")
    args = parser.parse_args(argv)
    import torch

    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    why_not = None if cuda else "no CUDA device (torch.cuda.is_available() is False): dry run"
    steps = {
        "tests": _skipped("--skip-tests") if args.skip_tests else _tests_step(why_not),
        "precision": _precision_step(why_not, batch_size=args.batch_size, steps=args.steps),
    }
    failed = [name for name, step in steps.items() if step["status"] == "failed"]
    status = "failed" if failed else ("dry-run" if not cuda else "passed")
    document = {
        "benchmark": "gpu_check",
        "status": status,
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "command": "python " + " ".join(sys.argv),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "torch": torch.__version__,
        "tolerance": _TOLERANCE,
        "wall_s": round(time.perf_counter() - started, 1),
        "steps": steps,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_check.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(_table(document))
    print(f"wrote {path}")
    print(f"gpu-check: {status.upper()}" + (f" ({', '.join(failed)})" if failed else "")
          + f" in {document['wall_s']:.0f} s", flush=True)
    return 1 if failed else 0


def _skipped(reason: str, **extra: Any) -> dict[str, Any]:
    print(f"  skipped: {reason}", flush=True)
    return {"status": "skipped", "reason": reason, **extra}


def _failed(reason: str, **extra: Any) -> dict[str, Any]:
    print(f"  FAILED: {reason}", flush=True)
    return {"status": "failed", "reason": reason, **extra}


def _tests_step(why_not: str | None) -> dict[str, Any]:
    """``pytest -m gpu`` on ``GPU_TESTS``; on CPU only collects them (an import error still fails the step)."""
    print(f"== tests: pytest -m gpu {' '.join(GPU_TESTS)}", flush=True)
    base = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", "-q"]
    if why_not is not None:
        done = subprocess.run([*base, "--collect-only", *GPU_TESTS], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=_TEST_TIMEOUT_S, check=False)
        collected = [line for line in done.stdout.splitlines() if "::" in line]
        if done.returncode != 0 or not collected:
            return _failed(f"collecting the GPU tests failed (exit {done.returncode})",
                           output=done.stdout[-2000:] + done.stderr[-2000:])
        return _skipped(why_not, collected=len(collected))
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        junit = Path(tmp) / "junit.xml"
        try:
            done = subprocess.run([*base, "-rfEs", f"--junitxml={junit}", *GPU_TESTS], cwd=REPO_ROOT,
                                  capture_output=True, text=True, timeout=_TEST_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            return _failed(f"pytest -m gpu ran past {_TEST_TIMEOUT_S} s")
        counts = _junit_counts(junit)
    tail = done.stdout[-3000:] + done.stderr[-1000:]
    print(tail, flush=True)
    if done.returncode != 0 or counts["failures"] or counts["errors"] or counts["skipped"] or not counts["tests"]:
        return _failed(f"pytest exit {done.returncode}: {counts} (a skip on a GPU machine counts as a failure)",
                       counts=counts, output=tail)
    return {"status": "passed", "counts": counts}


def _junit_counts(path: Path) -> dict[str, int]:
    if not path.exists():
        return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def _model_config(model: str):
    """The example's model and loss sections (parsed by tsdl's own config schema)."""
    import yaml

    from tsdl.config import parse_config

    raw = yaml.safe_load((REPO_ROOT / "examples" / MODELS[model]).read_text())
    return parse_config({"model": raw["model"], "loss": raw["loss"]})


def synthetic_batches(n_batches: int, batch_size: int, *, seed: int = 0) -> list[tuple[Any, Any]]:
    """``n_batches`` of ``(past [B, L, 1], target [B, H])``: daily and weekly cycles plus noise,
    so the loss falls while training (a loss on pure noise would agree trivially)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(_L + _H, dtype=torch.float32)
    phase = torch.rand(n_batches * batch_size, 2, generator=gen) * 2 * math.pi
    series = (torch.sin(2 * math.pi * t / 24 + phase[:, :1]) + 0.5 * torch.sin(2 * math.pi * t / 168 + phase[:, 1:])
              + 0.1 * torch.randn(n_batches * batch_size, _L + _H, generator=gen))
    return [(chunk[:, :_L, None].contiguous(), chunk[:, _L:].contiguous()) for chunk in series.split(batch_size)]


def precision_run(model_name: str, precision: str, device, batches, *, steps: int, warmup: int = 10) -> dict[str, Any]:
    """Train ``warmup + steps`` steps at ``precision`` from seed 0 on ``batches`` (cycled); the
    timed steps' windows/s, peak memory (CUDA) and the loss curve."""
    import torch

    from tsdl.losses import build_loss
    from tsdl.models import build_model
    from tsdl.train.precision import MixedPrecision

    config = _model_config(model_name)
    torch.manual_seed(0)
    loss_fn = build_loss(config.loss).to(device)
    model = build_model(config.model, input_chunk_length=_L, output_chunk_length=_H, n_past_features=1,
                        n_future_features=0, n_static=0, loss=loss_fn).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    amp = MixedPrecision(precision, device)
    batches = [(p.to(device), y.to(device)) for p, y in batches]
    empty_future, empty_static = batches[0][0].new_zeros(len(batches[0][0]), _H, 0), batches[0][0].new_zeros(
        len(batches[0][0]), 0)
    losses: list[Any] = []

    def step(i: int) -> None:
        past, target = batches[i % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast():
            pred = model(past, empty_future[: len(past)], empty_static[: len(past)])
        loss = loss_fn(pred.float(), target)
        amp.scaler.scale(loss).backward()
        amp.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        amp.scaler.step(optimizer)
        amp.scaler.update()
        losses.append(loss.detach())

    cuda = device.type == "cuda"
    for i in range(warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    curve = [float(v) for v in torch.stack(losses).cpu()]
    return {
        "windows_per_s": steps * len(batches[0][0]) / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
        "first_loss": curve[0],
        "final_loss": sum(curve[-10:]) / len(curve[-10:]),
    }


def agreement(reference: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """What in ``run`` disagrees with the fp32 ``reference`` beyond ``_TOLERANCE`` (empty: agrees)."""
    problems = []
    for key, tol in (("first_loss", _TOLERANCE["first_step_rel"]), ("final_loss", _TOLERANCE["final_rel"])):
        ref, got = reference[key], run[key]
        if not (math.isfinite(got) and abs(got - ref) <= tol * abs(ref)):
            problems.append(f"{key} {got:.5g} vs fp32 {ref:.5g} (tolerance {tol:.0%})")
    return problems


def _precision_step(why_not: str | None, *, batch_size: int, steps: int, device: str = "cuda",
                    precisions: tuple[str, ...] = PRECISIONS) -> dict[str, Any]:
    print(f"== precision: fp32 vs bf16-mixed vs 16-mixed, batch {batch_size}, {steps} steps", flush=True)
    import torch

    for model in MODELS:  # parse every config even in a dry run: a renamed field fails here
        _model_config(model)
    if why_not is not None:
        return _skipped(why_not, models=list(MODELS), precisions=list(PRECISIONS))
    batches = synthetic_batches(8, batch_size)
    rows, problems = [], []
    for model in MODELS:
        reference = None
        for precision in precisions:
            try:
                run = precision_run(model, precision, torch.device(device), batches, steps=steps)
            except Exception as exc:  # one precision failing must not hide the others' numbers
                problems.append(f"{model} {precision}: {type(exc).__name__}: {exc}")
                continue
            reference = reference or run
            bad = agreement(reference, run)
            problems += [f"{model} {precision}: {p}" for p in bad]
            rows.append({"model": model, "precision": precision, **run,
                         "speedup_vs_fp32": run["windows_per_s"] / reference["windows_per_s"],
                         "losses_agree": not bad})
    extra = {"batch_size": batch_size, "steps": steps, "rows": rows}
    return _failed("; ".join(problems), **extra) if problems else {"status": "passed", **extra}


def _table(document: dict[str, Any]) -> str:
    lines = [f"gpu-check {document['status']} on {document['gpu'] or 'no GPU'} ({document['date_utc']} UTC)"]
    for name, step in document["steps"].items():
        detail = step.get("reason") or step.get("counts") or ""
        lines.append(f"  {name:<10} {step['status']:<8} {detail}")
    rows = document["steps"]["precision"].get("rows") or []
    if rows:
        lines.append(f"  {'model':<9} {'precision':<11} {'win/s':>10} {'x fp32':>7} {'peak MiB':>9} "
                     f"{'first loss':>10} {'final loss':>10} agree")
        for r in rows:
            lines.append(f"  {r['model']:<9} {r['precision']:<11} {r['windows_per_s']:>10,.0f} "
                         f"{r['speedup_vs_fp32']:>7.2f} {r['peak_mem_mb'] or 0:>9,.0f} {r['first_loss']:>10.4f} "
                         f"{r['final_loss']:>10.4f} {'yes' if r['losses_agree'] else 'NO'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
