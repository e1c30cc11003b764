"""Startup overhead: wall time from command start to the first training step, phase by phase.

Each measurement is a fresh interpreter (what `tsdl train` pays), started by this script with
its launch time in the environment. The child walks the path of ``tsdl.api.train`` (tracking
off) and stamps every phase:

    interpreter   process start -> first line of the child
    imports       torch, ray, tsdl
    prepare_data  read + checklist + split + scale
    ray_init      in-process Ray (GCS, raylet, workers pool)
    build         TorchTrainer + Ray Datasets of encoded window rows
    worker_up     fit() -> the train function starts on rank 0 (worker group, torch.distributed)
    worker_setup  -> first epoch: model, DDP wrap, dataset shards -> WindowSet
    first_step    -> the first optimizer step has finished

    python bench/bench_startup.py [--workers 1 2] [--repeats 2]
    python bench/bench_startup.py --smoke
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

_T_CHILD = time.time()  # before any heavy import: the end of "interpreter"

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

__all__ = ["main"]

_PHASES = ["interpreter", "imports", "prepare_data", "ray_init", "build", "worker_up", "worker_setup", "first_step"]


class _EpochStamp:
    """Picklable epoch hook: stamps ``worker_setup`` when rank 0 starts epoch 1."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, epoch: int, rank: int) -> None:
        if epoch == 1 and rank == 0:
            _append(self.path, "worker_setup")


class _LoggerStamp:
    """Picklable ``factory(rank=...)``: a metrics logger that stamps rank 0's first step."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, *, rank: int, **_: Any) -> _FirstStepLogger:
        return _FirstStepLogger(self.path if rank == 0 else None)


class _FirstStepLogger:
    def __init__(self, path: str | None) -> None:
        self.path = path

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.path is not None:
            _append(self.path, "first_step")
            self.path = None

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        pass


def _append(path: str, name: str) -> None:
    with open(path, "a") as f:
        f.write(f"{name} {time.time()}\n")


def _timed(fn, path: str):
    """Wrap the per-worker train function to stamp when rank 0 enters it."""

    def wrapper(loop_config):
        import ray.train

        if ray.train.get_context().get_world_rank() == 0:
            _append(path, "worker_up")
        return fn(loop_config)

    return wrapper


def _child(workers: int, smoke: bool, stamps: str) -> None:
    marks = {"interpreter": _T_CHILD}
    import _common  # noqa: F401  (sets the Ray env vars)
    import ray  # noqa: F401
    import torch  # noqa: F401

    from tsdl.data import prepare_data
    from tsdl.runtime import ensure_ray
    from tsdl.train import build_trainer

    marks["imports"] = time.time()
    overrides = [
        "training.max_epochs=1", "training.limit_train_batches=2", "training.log_every_n_steps=1",
        f"resources.num_workers={workers}", "resources.max_failures=0",
        f"resources.storage_path={Path(stamps).parent / 'results'}",
    ]
    config = None if smoke else _common.etth1_config(overrides=overrides)
    if config is None:
        config = _common.synthetic_config(overrides=overrides)
    prepared = prepare_data(config)
    marks["prepare_data"] = time.time()
    ensure_ray(num_cpus=2)
    marks["ray_init"] = time.time()
    trainer = build_trainer(
        # A fresh run name per measurement: Train V2 would otherwise resume the previous run.
        config, prepared, run_name=Path(stamps).stem, logger_factory=_LoggerStamp(stamps),
        epoch_hooks=(_EpochStamp(stamps),),
    )
    trainer.train_loop_per_worker = _timed(trainer.train_loop_per_worker, stamps)
    marks["build"] = time.time()
    trainer.fit()
    for line in Path(stamps).read_text().split("\n"):
        if line.strip():
            name, value = line.split()
            marks.setdefault(name, float(value))
    print(json.dumps(marks), flush=True)


def _measure(workers: int, smoke: bool, tmp: Path) -> dict[str, float]:
    stamps = tmp / f"stamps-{workers}-{time.time_ns()}.txt"
    cmd = [sys.executable, __file__, "--child", str(workers), "--stamps", str(stamps)] + (["--smoke"] if smoke else [])
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"startup child ({workers} workers) failed:\n{done.stderr[-3000:]}")
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    missing = [p for p in _PHASES if p not in marks]
    if missing:
        raise SystemExit(f"startup child ({workers} workers) never reached {missing}:\n{done.stderr[-3000:]}")
    row: dict[str, float] = {}
    previous = t0
    for phase in _PHASES:
        row[phase] = marks[phase] - previous
        previous = marks[phase]
    row["total"] = previous - t0
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import tempfile

    import _common

    parser = _common.base_parser(__doc__)
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stamps", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.smoke, args.stamps)
        return {}
    if args.smoke:
        args.workers, args.repeats = [1], 1
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tsdl-startup-") as tmp:
        for repeat in range(args.repeats):  # alternate worker counts so load hits both alike
            for workers in args.workers:
                row = {"workers": workers, "repeat": repeat, **_measure(workers, args.smoke, Path(tmp))}
                rows.append(row)
                print(f"{workers} worker(s), repeat {repeat}: {row['total']:.1f} s to the first step", flush=True)
    summary = []
    for workers in args.workers:
        mine = [r for r in rows if r["workers"] == workers]
        mean = {p: sum(r[p] for r in mine) / len(mine) for p in [*_PHASES, "total"]}
        dominant = max(_PHASES, key=lambda p: mean[p])
        summary.append({"workers": workers, **mean, "dominant": dominant})
    _common.print_table(summary, ["workers", *_PHASES, "total", "dominant"],
                        title="seconds from command start to the first training step (mean of repeats)")
    payload = {"settings": {"workers": args.workers, "repeats": args.repeats}, "summary": summary, "runs": rows}
    _common.write_results("startup", payload, args.out, smoke=args.smoke)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
