"""GPU: fp32 vs AMP (fp16, bf16) step throughput and peak memory, and 1 vs N DDP workers.

Step throughput times tsdl's own precision handling (``tsdl.train.precision.MixedPrecision``:
autocast, GradScaler for fp16) around a forward/backward/clip/AdamW step on device-resident
batches, so it measures the model step, not the input pipeline. DDP scaling runs the full
``tsdl.api.train`` path with ``resources.use_gpu`` and 1, 2, ... workers up to the GPU count.
Every number is recorded with the GPU model. Target: AMP >= 1.5x fp32 for PatchTST.

Without CUDA, ``--device cuda`` prints a skip message and exits 0. ``--smoke`` runs the same
step benchmark on CPU (fp32 and bf16, tiny shapes) so the script is exercised without a GPU.

    python bench/bench_gpu.py --device cuda [--models patchtst dlinear] [--batch-size 256]
    python bench/bench_gpu.py --smoke
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

import _common
import torch

__all__ = ["main", "step_throughput"]

_PRECISIONS = ("32", "16-mixed", "bf16-mixed")


def step_throughput(
    model_name: str, precision: str, device: torch.device, *, batch_size: int, input_chunk_length: int,
    output_chunk_length: int, steps: int, warmup: int = 10,
) -> dict[str, Any]:
    """Windows/s and peak memory of ``steps`` training steps at one precision.

    Returns:
        ``{"windows_per_s", "step_ms", "peak_mem_mb"}`` (memory only on CUDA, else None).
    """
    from tsdl.config import parse_config
    from tsdl.losses import build_loss
    from tsdl.models import build_model
    from tsdl.train.precision import MixedPrecision

    config = parse_config({"model": {"name": model_name}})
    torch.manual_seed(0)
    loss_fn = build_loss(config.loss).to(device)
    model = build_model(config.model, input_chunk_length=input_chunk_length,
                        output_chunk_length=output_chunk_length, n_past_features=1, n_future_features=0,
                        n_static=0, loss=loss_fn).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = MixedPrecision(precision, device)
    past = torch.randn(batch_size, input_chunk_length, 1, device=device)
    future = past.new_zeros(batch_size, output_chunk_length, 0)
    static = past.new_zeros(batch_size, 0)
    target = torch.randn(batch_size, output_chunk_length, device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast():
            pred = model(past, future, static)
        loss = loss_fn(pred.float(), target)
        amp.scaler.scale(loss).backward()
        amp.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        amp.scaler.step(optimizer)
        amp.scaler.update()

    cuda = device.type == "cuda"
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - started
    return {
        "windows_per_s": steps * batch_size / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
    }


def _ddp_scaling(n_gpus: int, *, smoke: bool) -> list[dict[str, Any]]:
    """Full-path windows/s of PatchTST on ETTh1 with 1..n_gpus GPU workers (global batch fixed)."""
    from tsdl import api
    from tsdl.ray_connection import ensure_ray

    ensure_ray()
    rows = []
    for workers in sorted({1, n_gpus}):
        overrides = ["training.max_epochs=2", "training.limit_train_batches=200", "training.batch_size=256",
                     "training.early_stopping.enabled=false", f"resources.num_workers={workers}",
                     "resources.use_gpu=true", "resources.max_failures=0"]
        config = None if smoke else _common.etth1_config("etth1-patchtst.yaml", overrides)
        config = config or _common.synthetic_config(overrides=overrides)
        with tempfile.TemporaryDirectory(prefix="tsdl-gpu-") as tmp:
            config.resources.storage_path = tmp
            result = api.train(config, progress=False)
        rows.append({"workers": workers, "windows_per_s": max(h["windows_per_s"] for h in result.history)})
    for row in rows:
        row["speedup"] = row["windows_per_s"] / rows[0]["windows_per_s"]
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _common.base_parser(__doc__)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--models", nargs="+", default=["patchtst", "dlinear"])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-ddp", action="store_true", help="skip the 1 vs N workers run")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.models, args.batch_size, args.steps, args.no_ddp = "cpu", ["patchtst"], 8, 3, True
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: skipped, no CUDA device visible (torch.cuda.is_available() is False); "
              "run it on a GPU machine, or use --smoke for a CPU check of the script", flush=True)
        return {"skipped": True}
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    precisions = _PRECISIONS if device.type == "cuda" else ("32", "bf16-mixed")
    L, H = (48, 12) if args.smoke else (336, 96)
    rows: list[dict[str, Any]] = []
    for model in args.models:
        base = None
        for precision in precisions:
            run = step_throughput(model, precision, device, batch_size=args.batch_size, input_chunk_length=L,
                                  output_chunk_length=H, steps=args.steps)
            base = base or run["windows_per_s"]
            rows.append({"model": model, "precision": precision, "device": gpu or "cpu", **run,
                         "speedup_vs_fp32": run["windows_per_s"] / base})
    _common.print_table(rows, ["model", "precision", "device", "windows_per_s", "step_ms", "peak_mem_mb",
                               "speedup_vs_fp32"], title=f"training step, batch {args.batch_size}, L={L}, H={H}")
    ddp = []
    if not args.no_ddp and device.type == "cuda":
        ddp = _ddp_scaling(torch.cuda.device_count(), smoke=args.smoke)
        _common.print_table(ddp, ["workers", "windows_per_s", "speedup"], title=f"DDP scaling on {gpu}")
    payload = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "gpu": gpu,
               "gpu_count": torch.cuda.device_count(), "steps": rows, "ddp": ddp}
    _common.write_results("gpu", payload, args.out, smoke=args.smoke)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
