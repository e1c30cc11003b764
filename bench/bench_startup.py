"""Fixed cost: where a short run's and a trial's wall time goes, phase by phase.

1. ``cli``: wall time of ``tsdl train --set training.max_epochs=1`` on the default synthetic
   data (8 series x 1000 steps, MLflow on), in a fresh directory: process start to exit.
2. ``run`` phases, each measurement a fresh interpreter walking the path of ``tsdl.api.train``
   (tracking off) and stamping every phase; ``--paths in_process ray`` compares the default
   single-worker path (the loop in the driver, ``tsdl.train.in_process``) with a 1-worker
   ``TorchTrainer``:

       interpreter   process start -> first line of the child
       imports       torch, tsdl (and ray for the ray path)
       prepare_data  read/generate + checklist + split + scale
       ray_init      in-process Ray (ray path only)
       setup         fit() -> epoch 1 starts (worker group, data shards, model, optimizer)
       first_step    -> the first optimizer step has finished
       train         -> fit() returned (every epoch, validation, checkpoints)
       evaluate      -> test metrics computed from the best checkpoint

3. ``trial``: the fixed cost of a single-worker Tune trial after the first: two studies of the
   same config with 2 and 6 trials (1 and 2 with ``--smoke``), one at a time, no early stopping;
   ``((wall_6 - wall_2) - (steps_6 - steps_2)) / 4``, where ``steps`` is the time the trials
   spent in training and validation steps (their ``epoch_time_s`` + ``val_time_s``).

    python bench/bench_startup.py [--repeats 2] [--paths in_process ray] [--skip cli run trial]
    python bench/bench_startup.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

_T_CHILD = time.time()  # before any heavy import: the end of "interpreter"

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

__all__ = ["main"]

_PHASES = ["interpreter", "imports", "prepare_data", "ray_init", "setup", "first_step", "train", "evaluate"]


class _EpochStamp:
    """Picklable epoch hook: stamps ``setup`` when rank 0 starts epoch 1."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, epoch: int, rank: int) -> None:
        if epoch == 1 and rank == 0:
            _append(self.path, "setup")


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

    def flush(self) -> None:
        pass


def _append(path: str, name: str) -> None:
    with open(path, "a") as f:
        f.write(f"{name} {time.time()}\n")


def _run_config(smoke: bool, storage: Path):
    import _common

    overrides = [
        "training.max_epochs=1", "training.log_every_n_steps=1", "resources.max_failures=0",
        f"resources.storage_path={storage}",
    ]
    if smoke:
        overrides.append("training.limit_train_batches=2")
        return _common.synthetic_config(overrides=overrides)
    # The default `tsdl train` data: 8 synthetic series x 1000 steps.
    return _common.synthetic_config(n_series=8, n_timesteps=1000, input_chunk_length=168,
                                    output_chunk_length=24, overrides=overrides)


def _child(path: str, smoke: bool, stamps: str) -> None:
    marks = {"interpreter": _T_CHILD}
    import _common  # noqa: F401  (sets the Ray env vars)
    import torch  # noqa: F401

    from tsdl.data import prepare_data
    from tsdl.train import evaluate_windows, load_forecaster
    from tsdl.train.in_process import fit_in_process
    from tsdl.train.trainer import make_loop_config

    if path == "ray":
        import ray  # noqa: F401

        from tsdl.ray_connection import ensure_ray
        from tsdl.train import build_trainer
    marks["imports"] = time.time()
    config = _run_config(smoke, Path(stamps).parent / "results")
    prepared = prepare_data(config)
    marks["prepare_data"] = time.time()
    run_name = Path(stamps).stem  # fresh per measurement: an existing name would resume
    hooks = {"logger_factory": _LoggerStamp(stamps), "epoch_hooks": (_EpochStamp(stamps),)}
    if path == "ray":
        ensure_ray(num_cpus=os.cpu_count())
        marks["ray_init"] = time.time()
        result = build_trainer(config, prepared, run_name=run_name, **hooks).fit()
    else:
        marks["ray_init"] = time.time()
        result = fit_in_process(make_loop_config(config, prepared, **hooks), prepared,
                                run_dir=Path(config.resources.storage_path) / run_name, max_failures=0)
    marks["train"] = time.time()
    with result.checkpoint.as_directory() as directory:
        model, loss, _, _ = load_forecaster(Path(directory))
    from tsdl.api import _inverse  # the evaluation `tsdl train` runs, on the original scale too

    evaluate_windows(model, loss, prepared.windows("test"), inverse=_inverse(prepared.scalers),
                     history=prepared.history("test"), season_length=prepared.season_length)
    marks["evaluate"] = time.time()
    for line in Path(stamps).read_text().split("\n"):
        if line.strip():
            name, value = line.split()
            marks.setdefault(name, float(value))
    print(json.dumps(marks), flush=True)


def _measure_run(path: str, smoke: bool, tmp: Path) -> dict[str, float]:
    stamps = tmp / f"stamps-{path}-{time.time_ns()}.txt"
    cmd = [sys.executable, __file__, "--child", path, "--stamps", str(stamps)] + (["--smoke"] if smoke else [])
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"startup child ({path}) failed:\n{done.stderr[-3000:]}")
    marks = json.loads(done.stdout.strip().splitlines()[-1])
    missing = [p for p in _PHASES if p not in marks]
    if missing:
        raise SystemExit(f"startup child ({path}) never reached {missing}:\n{done.stderr[-3000:]}")
    row: dict[str, float] = {}
    previous = t0
    for phase in ["interpreter", "imports", "prepare_data", "ray_init", "setup", "first_step", "train", "evaluate"]:
        row[phase] = marks[phase] - previous
        previous = marks[phase]
    row["exit"] = time.time() - previous
    row["total"] = time.time() - t0
    return row


def _measure_cli(smoke: bool, tmp: Path) -> dict[str, float]:
    """Wall time of the documented 1-epoch synthetic command, in a fresh directory."""
    work = tmp / f"cli-{time.time_ns()}"
    work.mkdir()
    cmd = [str(Path(sys.executable).with_name("tsdl")), "train", "--set", "training.max_epochs=1", "--quiet"]
    if smoke:
        cmd += ["--set", "training.limit_train_batches=2", "--set", "data.synthetic.n_series=2"]
    t0 = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=work, check=False)
    if done.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return {"wall_s": time.time() - t0}


def _study_seconds(trials: int, smoke: bool, storage: Path) -> dict[str, float]:
    """Wall time of a study of ``trials`` sequential trials and the time its steps took."""
    import _common

    from tsdl.tune import run_study

    epochs = 1 if smoke else 2
    config = _common.synthetic_config(overrides=[
        "training.limit_train_batches=4", "training.batch_size=32", "resources.max_failures=0",
        f"resources.storage_path={storage}", f"tune.stage1_trials={trials}", "tune.stage2_trials=0",
        f"tune.startup_trials={trials}", "tune.max_concurrent_trials=1",
        f"tune.asha.max_epochs={epochs}", f"tune.asha.grace_period={epochs}",
    ])
    started = time.perf_counter()
    result = run_study(config, progress=False)
    wall = time.perf_counter() - started
    steps = sum(h.get("epoch_time_s", 0.0) + h.get("val_time_s", 0.0) for r in result.records for h in r.history)
    return {"trials": len(result.records), "wall_s": wall, "steps_s": steps}


def _measure_trial(smoke: bool, tmp: Path) -> dict[str, float]:
    from tsdl.ray_connection import ensure_ray

    ensure_ray(num_cpus=2)  # shared by both studies, like one driver running studies back to back
    n_few, n_many = (1, 2) if smoke else (2, 6)
    few = _study_seconds(n_few, smoke, tmp / f"few-{time.time_ns()}")
    many = _study_seconds(n_many, smoke, tmp / f"many-{time.time_ns()}")
    extra = many["trials"] - few["trials"]
    fixed = ((many["wall_s"] - few["wall_s"]) - (many["steps_s"] - few["steps_s"])) / extra
    return {"trials_few": few["trials"], "trials_many": many["trials"], "wall_few": few["wall_s"],
            "wall_many": many["wall_s"], "steps_few": few["steps_s"], "steps_many": many["steps_s"],
            "fixed_per_trial_s": fixed}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import tempfile

    import _common

    parser = _common.base_parser(__doc__)
    parser.add_argument("--paths", nargs="+", choices=["in_process", "ray"], default=["in_process", "ray"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip", nargs="*", choices=["cli", "run", "trial"], default=[])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--stamps", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.smoke, args.stamps)
        return {}
    if args.smoke:
        args.paths, args.repeats = ["in_process"], 1
    runs: list[dict[str, Any]] = []
    payload: dict[str, Any] = {"settings": {"paths": args.paths, "repeats": args.repeats, "skip": args.skip}}
    with tempfile.TemporaryDirectory(prefix="tsdl-startup-") as tmp:
        for repeat in range(args.repeats):  # alternate so load hits every variant alike
            if "cli" not in args.skip:
                row = {"what": "cli", "repeat": repeat, "load_1m": round(os.getloadavg()[0], 1),
                       **_measure_cli(args.smoke, Path(tmp))}
                runs.append(row)
                print(f"tsdl train (1 epoch, synthetic), repeat {repeat}: {row['wall_s']:.1f} s wall "
                      f"(load {row['load_1m']})", flush=True)
            for path in [] if "run" in args.skip else args.paths:
                row = {"what": "run", "path": path, "repeat": repeat, "load_1m": round(os.getloadavg()[0], 1),
                       **_measure_run(path, args.smoke, Path(tmp))}
                runs.append(row)
                print(f"run phases ({path}), repeat {repeat}: {row['total']:.1f} s", flush=True)
        if "trial" not in args.skip:
            row = {"what": "trial", "load_1m": round(os.getloadavg()[0], 1), **_measure_trial(args.smoke, Path(tmp))}
            runs.append(row)
            print(f"trial fixed cost: {row['fixed_per_trial_s']:.2f} s per trial after the first", flush=True)
    summary = []
    for path in [] if "run" in args.skip else args.paths:
        mine = [r for r in runs if r["what"] == "run" and r["path"] == path]
        mean = {p: sum(r[p] for r in mine) / len(mine) for p in [*_PHASES, "exit", "total"]}
        summary.append({"path": path, **mean, "dominant": max(_PHASES, key=lambda p: mean[p])})
    if summary:
        _common.print_table(summary, ["path", *_PHASES, "exit", "total", "dominant"],
                            title="run phases, seconds (mean of repeats)")
    cli = [r["wall_s"] for r in runs if r["what"] == "cli"]
    payload |= {"summary": summary, "runs": runs, "cli_wall_s": min(cli) if cli else None}
    trial = [r for r in runs if r["what"] == "trial"]
    payload["trial_fixed_s"] = trial[0]["fixed_per_trial_s"] if trial else None
    _common.write_results("startup", payload, args.out, smoke=args.smoke)
    return payload


if __name__ == "__main__":
    main(sys.argv[1:])
