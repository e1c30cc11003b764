"""Whole-epoch training throughput: `tsdl train` against the strongest plain PyTorch loop.

**plain** is written from the papers, not from tsdl: windows cut from the CSV with ``unfold``
(train-only standard scaling, as tsdl does), one ``[N, L + H]`` tensor of every window, a
``randperm`` per epoch, and for DLinear the model of Zeng et al. (2023) as a user would write it:
the moving average by cumulative sums, the whole batch as one ``[B, L]`` matrix, two
``nn.Linear``. (PatchTST's plain loop uses tsdl's PatchTST module: the model is not what this
compares.) Before timing, the plain DLinear is checked to give tsdl's outputs to float precision
with tsdl's weights, so the comparison stays fair. Each epoch of the plain loop does what a tsdl
epoch does: train (AdamW, clipping), validate every validation window, step ReduceLROnPlateau,
``torch.save`` the best state dict, append the epoch's metrics to a file.

**tsdl** is ``tsdl.api.train`` as `tsdl train` runs it (one worker trains in the driver, MLflow
tracking on to a SQLite file), timed from one epoch's start to the next (a probe in
``epoch_hooks``): training, validation, checkpoint save, MLflow metrics and the progress queue.

Rows: ``plain`` (AdamW defaults), ``plain+foreach``, ``plain+fused`` (``AdamW(fused=True)``),
``plain+compile`` (``torch.compile``, default mode), ``plain+compile+fused`` (both); ``tsdl``
(tsdl's defaults, as ``tsdl train`` runs them), and one tsdl row per plain row with the matching
tsdl setting: ``tsdl+default`` (``training.optimizer.implementation: default``) against
``plain``, ``tsdl+foreach``, ``tsdl+fused``, ``tsdl+compile`` (``training.compile: true``, torch's
default AdamW) and ``tsdl+compile+fused`` against theirs. ``--ddp`` adds tsdl with 2 DDP ranks x 1
thread (Ray Train) against its 1 process x every core. Same data, batch, precision (fp32) and
torch threads (every core) everywhere. The first epoch of every run is warm-up (allocator,
compilation) and not counted. Paths run back to back in each repeat, and each repeat gives a
**paired** ratio (path / its partner in the same repeat); the summary is their median and range.
``tsdl/fastest`` pairs tsdl's defaults with the fastest plain row, ``tsdl_best/fastest`` the
fastest tsdl row with it (the goal: >= 0.9). Results are written only when other processes used
at most 10% of the cores during every run (CPU seconds from /proc, minus this benchmark's own
process tree: the 1-minute load counts the benchmark's own threads and Ray, so a quiet box running
it reads above the core count).

``--numerics`` instead trains tsdl with each optimizer kernel (and compiled) from the same seed
and prints every epoch's losses and their largest relative difference from torch's default
AdamW, next to the difference one torch thread instead of all makes (float noise: another
reduction order): does a faster setting change what is learned?

    python bench/bench_throughput.py [--models dlinear patchtst] [--repeats 5] [--ddp]
    python bench/bench_throughput.py --numerics [--models dlinear patchtst] [--epochs 5]
    python bench/bench_throughput.py --smoke
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import numpy as np
import torch

__all__ = ["PlainDLinear", "check_plain_matches_tsdl", "main", "plain_run", "too_loaded", "tsdl_run"]

_CORES = len(os.sched_getaffinity(0))
_STEPS = {"dlinear": None, "patchtst": 16}
"""Training steps per epoch (None: the whole epoch). PatchTST steps are ~100x slower on CPU."""
PLAIN_VARIANTS = {
    "plain": {},
    "plain+foreach": {"foreach": True},
    "plain+fused": {"fused": True},
    "plain+compile": {"compile": True},
    "plain+compile+fused": {"compile": True, "fused": True},
}
TSDL_VARIANTS = {
    "tsdl": [],
    "tsdl+default": ["training.optimizer.implementation=default"],
    "tsdl+foreach": ["training.optimizer.implementation=foreach"],
    "tsdl+fused": ["training.optimizer.implementation=fused"],
    "tsdl+compile": ["training.compile=true", "training.optimizer.implementation=default"],
    "tsdl+compile+fused": ["training.compile=true", "training.optimizer.implementation=fused"],
}
"""tsdl's settings per row (config overrides); ``tsdl`` is its defaults."""
PAIRS = {"tsdl+default": "plain", "tsdl+foreach": "plain+foreach", "tsdl+fused": "plain+fused",
         "tsdl+compile": "plain+compile", "tsdl+compile+fused": "plain+compile+fused"}
"""Each tsdl row and the plain row with the same optimizer kernel and compilation."""
SMOKE_PATHS = ["plain", "plain+fused", "tsdl", "tsdl+fused"]
"""--smoke: one plain variant and its tsdl partner (compiling takes a minute)."""


class PlainDLinear(torch.nn.Module):
    """DLinear from the paper, written plainly: ``[B, L]`` in, ``[B, H]`` out.

    Trend = moving average of the series padded with its first/last value (``(k-1)//2`` in front,
    ``k//2`` behind), computed from one cumulative sum; seasonal = series - trend; one linear map
    each, summed.
    """

    def __init__(self, lookback: int, horizon: int, kernel: int) -> None:
        super().__init__()
        self.kernel, self.front, self.back = kernel, (kernel - 1) // 2, kernel // 2
        self.seasonal = torch.nn.Linear(lookback, horizon)
        self.trend = torch.nn.Linear(lookback, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = torch.cat([x[:, :1].expand(-1, self.front), x, x[:, -1:].expand(-1, self.back)], dim=1)
        sums = torch.nn.functional.pad(padded.cumsum(dim=1), (1, 0))
        trend = (sums[:, self.kernel :] - sums[:, : -self.kernel]) / self.kernel
        return self.seasonal(x - trend) + self.trend(trend)


class _PlainModel(torch.nn.Module):
    """``[B, L]`` -> ``[B, H]`` for the plain loop: PlainDLinear, or tsdl's module for other models."""

    def __init__(self, config, lookback: int, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon
        if config.model.name == "dlinear":
            self.net: torch.nn.Module = PlainDLinear(lookback, horizon, config.model.moving_avg)
            self.wrapped = False
        else:
            from tsdl.losses import build_loss
            from tsdl.models import build_model

            self.net = build_model(config.model, input_chunk_length=lookback, output_chunk_length=horizon,
                                   n_past_features=1, n_future_features=0, n_static=0, loss=build_loss(config.loss))
            self.wrapped = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.wrapped:
            return self.net(x)
        empty = x.new_zeros(x.shape[0], self.horizon, 0)
        return self.net(x[:, :, None], empty, x.new_zeros(x.shape[0], 0)).reshape(x.shape[0], self.horizon)


def plain_windows(config) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``[L + H]`` train and validation window of every column, standardized with the
    training rows' mean and std (pandas and numpy from the CSV; no tsdl data code)."""
    L, H = config.data.input_chunk_length, config.data.output_chunk_length
    values, train_rows, val_rows = _raw_values(config)
    mean, std = values[:train_rows].mean(0), values[:train_rows].std(0)
    scaled = torch.from_numpy(((values - mean) / std).astype(np.float32).T.copy())  # [C, T]

    def cut(lo: int, hi: int) -> torch.Tensor:
        return scaled[:, lo:hi].unfold(1, L + H, 1).reshape(-1, L + H).contiguous()

    return cut(0, train_rows), cut(train_rows - L, train_rows + val_rows)


def _raw_values(config) -> tuple[np.ndarray, int, int]:
    import pandas as pd

    frame = pd.read_csv(config.data.path)
    values = frame.drop(columns=[config.data.time_col]).to_numpy(np.float64)
    split = config.data.split
    return values, split.train_rows, split.val_rows


def _smoke_csv(directory: Path) -> Path:
    """A small wide CSV like ETTh1 (4 columns x 400 hours) for --smoke."""
    import pandas as pd

    rng = np.random.default_rng(0)
    t = np.arange(400)
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=400, freq="h").astype(str)})
    for i in range(4):
        frame[f"s{i}"] = np.sin(2 * np.pi * (t + 5 * i) / 24) + 0.1 * rng.standard_normal(400)
    path = directory / "smoke.csv"
    frame.to_csv(path, index=False)
    return path


def check_plain_matches_tsdl(config) -> float:
    """Max |plain - tsdl| DLinear output on real windows with tsdl's weights copied over; raises
    if above float precision (the plain model must compute the same function)."""
    from tsdl.losses import build_loss
    from tsdl.models import build_model

    L, H = config.data.input_chunk_length, config.data.output_chunk_length
    torch.manual_seed(0)
    ours = build_model(config.model, input_chunk_length=L, output_chunk_length=H, n_past_features=1,
                       n_future_features=0, n_static=0, loss=build_loss(config.loss))
    plain = PlainDLinear(L, H, config.model.moving_avg)
    plain.load_state_dict({k: v for k, v in ours.state_dict().items() if k.split(".")[0] in ("seasonal", "trend")})
    train, _ = plain_windows(config)
    x = train[torch.randperm(len(train))[:512], :L]
    with torch.no_grad():
        want = ours(x[:, :, None], x.new_zeros(len(x), H, 0), x.new_zeros(len(x), 0)).reshape(len(x), H)
        diff = float((plain(x) - want).abs().max())
    scale = float(want.abs().max())
    if not diff <= 1e-5 * max(scale, 1.0):
        raise AssertionError(f"plain DLinear differs from tsdl's by {diff:.3g} (outputs up to {scale:.3g})")
    return diff


def plain_run(config, *, epochs: int, threads: int, variant: str, workdir: Path) -> dict[str, Any]:
    """The plain loop, ``epochs`` whole epochs; wall time of each (train + validate + best save + metrics)."""
    options = PLAIN_VARIANTS[variant]
    tcfg = config.training
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(tcfg.seed)
    L = config.data.input_chunk_length
    train, val = plain_windows(config)
    model = _PlainModel(config, L, config.data.output_chunk_length)
    step_model = torch.compile(model) if options.get("compile") else model
    opt_args = {k: v for k, v in options.items() if k in ("foreach", "fused")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg.optimizer.lr,
                                  weight_decay=tcfg.optimizer.weight_decay, **opt_args)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=tcfg.lr_scheduler.factor,
                                                           patience=tcfg.lr_scheduler.patience)
    n, batch = len(train), tcfg.batch_size
    steps = -(-n // batch) if tcfg.limit_train_batches is None else min(-(-n // batch), tcfg.limit_train_batches)
    best, walls, train_walls, val_walls = float("inf"), [], [], []
    metrics_file = workdir / f"{variant}-metrics.jsonl"
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.train()
        order, total = torch.randperm(n), torch.zeros((), dtype=torch.float64)
        for step in range(steps):
            rows = train[order[step * batch : (step + 1) * batch]]
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.mse_loss(step_model(rows[:, :L]), rows[:, L:])
            loss.backward()
            if tcfg.gradient_clip_val is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.gradient_clip_val)
            optimizer.step()
            total += loss.detach() * len(rows)
        train_walls.append(time.perf_counter() - started)
        model.eval()
        val_started, val_total = time.perf_counter(), 0.0
        with torch.no_grad():
            for rows in val.split(batch):
                val_total += float(torch.nn.functional.mse_loss(step_model(rows[:, :L]), rows[:, L:])) * len(rows)
        val_loss = val_total / len(val)
        val_walls.append(time.perf_counter() - val_started)
        scheduler.step(val_loss)
        if val_loss < best:
            best = val_loss
            torch.save(model.state_dict(), workdir / f"{variant}-best.pt")
        with metrics_file.open("a") as f:
            f.write(json.dumps({"epoch": epoch, "train_loss": float(total) / min(n, steps * batch),
                                "val_loss": val_loss}) + "\n")
        walls.append(time.perf_counter() - started)
    torch.set_num_threads(previous)
    return _rates(walls, train_walls, min(n, steps * batch), threads, val_walls)


def _rates(walls: list[float], train_walls: list[float], n_windows: int, threads: int,
           val_walls: list[float]) -> dict[str, Any]:
    """Windows/s over the epochs after the first (warm-up): whole epoch and training steps only;
    and where a counted epoch's seconds went (mean): training steps, the validation pass, and the
    rest (scheduler, best-state save, metrics write; tsdl: checkpoint files, MLflow, progress)."""
    counted, counted_train = walls[1:] or walls, train_walls[1:] or train_walls
    counted_val = val_walls[1:] or val_walls
    mean = statistics.fmean
    return {
        "windows_per_s": n_windows * len(counted) / sum(counted),
        "train_windows_per_s": n_windows * len(counted_train) / sum(counted_train),
        "epoch_walls_s": [round(w, 4) for w in walls],
        "epoch_split_s": {"train": round(mean(counted_train), 4), "validation": round(mean(counted_val), 4),
                          "rest": round(mean(counted) - mean(counted_train) - mean(counted_val), 4)},
        "threads": threads,
    }


def tsdl_run(config, *, epochs: int, workdir: Path, ddp: bool = False, settings: list[str] = ()) -> dict[str, Any]:
    """``tsdl.api.train`` for ``epochs + 1`` epochs; the wall time from each epoch's start to the
    next one's (a rank-0 probe in ``epoch_hooks`` writes the clock to a file, which also works
    inside Ray Train workers) for epochs 1..``epochs`` (pass the plain loop's count: the first is
    warm-up on both sides). ``settings`` are config overrides (``TSDL_VARIANTS``)."""
    from tsdl import api
    from tsdl.config import parse_config

    if settings:
        config = parse_config(config.model_dump(mode="json"), overrides=list(settings))
    config = config.model_copy(deep=True)
    config.training.max_epochs = epochs + 1
    config.resources.storage_path = str(workdir / "runs")
    config.tracking.enabled = True
    config.tracking.tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    if ddp:
        from tsdl.ray_connection import ensure_ray

        ensure_ray(num_cpus=_CORES)
        config.resources.num_workers, config.resources.cpus_per_worker = 2, max(1, _CORES // 2)
    clock_file = workdir / f"epoch-starts-{time.time_ns()}.txt"

    def probe(epoch: int, rank: int, _path: str = str(clock_file)) -> None:
        if rank == 0:
            with open(_path, "a") as f:
                f.write(f"{epoch} {time.time()}\n")

    result = api.train(config, progress=False, epoch_hooks=(probe,))
    starts = [float(line.split()[1]) for line in clock_file.read_text().splitlines()]
    walls = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    history = result.history[: len(walls)]
    n_windows = history[0]["windows_per_s"] * history[0]["epoch_time_s"]
    train_walls = [h["epoch_time_s"] for h in history]
    threads = 1 if ddp else _CORES
    return _rates(walls, train_walls, round(n_windows), threads, [h["val_time_s"] for h in history])


def _config(model: str, *, smoke: bool, workdir: Path):
    """The example's config (ETTh1, batch 224 for DLinear), or a small CSV for --smoke."""
    from tsdl.config import load_config

    common = ["training.early_stopping.enabled=false", "resources.num_workers=1", "resources.max_failures=0"]
    if model == "dlinear":
        common.append("training.batch_size=224")
    if _STEPS.get(model) is not None:
        common.append(f"training.limit_train_batches={4 if smoke else _STEPS[model]}")
    config = None if smoke else _common.etth1_config(f"etth1-{model}.yaml", overrides=common)
    if config is not None:
        return config, f"ETTh1 (L=336, H=96, batch {config.training.batch_size})"
    smoke_data = ["data.dataset=", f"data.path={_smoke_csv(workdir)}", "tracking.enabled=false",
                  "data.input_chunk_length=48", "data.output_chunk_length=12", "training.batch_size=16",
                  "data.split.train_rows=240", "data.split.val_rows=80", "data.split.test_rows=80"]
    config = load_config(_common.EXAMPLES / f"etth1-{model}.yaml", overrides=[*smoke_data, *common])
    return config, "4 sine series x 400 rows (L=48, H=12, batch 16)"


def _paired(by: dict, repeats: list[int], path: str, partner: str, key: str = "windows_per_s") -> list[float]:
    return [by[(k, path)][key] / by[(k, partner)][key] for k in repeats]


def _summary(model: str, dataset: str, runs: list[dict[str, Any]], paths: list[str]) -> dict[str, Any]:
    """Medians per path and paired ratios per repeat (median and [min, max])."""
    row: dict[str, Any] = {"model": model, "dataset": dataset, "threads": _CORES}
    repeats = sorted({r["repeat"] for r in runs})
    by = {(r["repeat"], r["path"]): r for r in runs}

    def ratio(name: str, values: list[float]) -> None:
        row[name], row[f"{name}_range"] = statistics.median(values), [min(values), max(values)]

    for path in paths:
        row[f"{path}_win_s"] = statistics.median(by[(k, path)]["windows_per_s"] for k in repeats)
    for path in paths:
        if path.startswith("plain") and path != "plain":
            ratio(f"{path}/plain", _paired(by, repeats, path, "plain"))
        elif PAIRS.get(path) in paths:
            ratio(f"{path}/{PAIRS[path]}", _paired(by, repeats, path, PAIRS[path]))
            ratio(f"{path}/{PAIRS[path]}_train_steps_only",
                  _paired(by, repeats, path, PAIRS[path], "train_windows_per_s"))
    if "tsdl" in paths:
        ratio("tsdl/plain", _paired(by, repeats, "tsdl", "plain"))
    fastest = max((p for p in paths if p.startswith("plain")), key=lambda p: row[f"{p}_win_s"])
    row["fastest_plain"] = fastest
    ratio("tsdl/fastest", _paired(by, repeats, "tsdl", fastest))
    best = max((p for p in paths if p.startswith("tsdl")), key=lambda p: row[f"{p}_win_s"])
    row["fastest_tsdl"] = best
    ratio("tsdl_best/fastest", _paired(by, repeats, best, fastest))
    if "ddp" in paths:  # 2 ranks x 1 thread against 1 process x every core, paired
        ratio("ddp/tsdl", _paired(by, repeats, "ddp", "tsdl"))
    row["target"] = ">= 0.9 of the fastest plain row"
    return row


NUMERICS = {
    "default": ["training.optimizer.implementation=default"],
    "default, 1 thread": ["training.optimizer.implementation=default", "resources.torch_threads=1"],
    "foreach": ["training.optimizer.implementation=foreach"],
    "fused": ["training.optimizer.implementation=fused"],
    "compile": ["training.compile=true", "training.optimizer.implementation=default"],
}
"""--numerics rows: the first is the reference; the 1-thread row shows what float noise alone does."""


def numerics(config, *, epochs: int, workdir: Path, rows: dict[str, list[str]] = NUMERICS) -> dict[str, Any]:
    """Every epoch's (train_loss, val_loss) per row from the same seed, and each row's largest
    relative difference from the first row's."""
    from tsdl import api
    from tsdl.config import parse_config

    losses: dict[str, list[list[float]]] = {}
    for name, overrides in rows.items():
        run_config = parse_config(config.model_dump(mode="json"), overrides=[
            *overrides, f"training.max_epochs={epochs}", f"resources.storage_path={workdir / 'numerics'}",
            "tracking.enabled=false"])
        history = api.train(run_config, progress=False).history
        losses[name] = [[h["train_loss"], h["val_loss"]] for h in history]
    reference = losses[next(iter(rows))]
    diffs = {name: max(abs(a - b) / max(abs(b), 1e-12) for got, want in zip(values, reference, strict=True)
                       for a, b in zip(got, want, strict=True))
             for name, values in losses.items()}
    for name, values in losses.items():
        print(f"{name:>18}: max rel. diff {diffs[name]:.2e}; epoch losses (train, val) "
              + " ".join(f"({t:.6f}, {v:.6f})" for t, v in values), flush=True)
    return {"epochs": epochs, "losses": losses, "max_rel_diff_from_default": diffs}


MAX_OTHERS = 0.10
"""Other processes may use at most this share of the machine during a run whose results are written."""


def too_loaded(others: float | None, cores: int) -> str | None:
    """Why results taken while other processes used this share of the cores must not be written."""
    if others is None:
        return "could not measure other processes' CPU (no /proc): rerun with --force to keep the numbers"
    if others <= MAX_OTHERS:
        return None
    return (f"other processes used {others:.0%} of the {cores} cores during the run (more than "
            f"{MAX_OTHERS:.0%}): the numbers mislead; rerun on a quiet machine (or --force to keep them anyway)")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _common.base_parser(__doc__)
    parser.add_argument("--models", nargs="+", default=["dlinear", "patchtst"])
    parser.add_argument("--epochs", type=int, default=3, help="counted epochs per run (+1 warm-up for plain)")
    parser.add_argument("--repeats", type=int, default=5, help="paired rounds per model")
    parser.add_argument("--paths", nargs="+", default=[*PLAIN_VARIANTS, *TSDL_VARIANTS],
                        choices=[*PLAIN_VARIANTS, *TSDL_VARIANTS], help="rows to run (plain and tsdl are always run)")
    parser.add_argument("--ddp", action="store_true", help="also tsdl with 2 DDP ranks x 1 thread")
    parser.add_argument("--force", action="store_true", help="write results even when other processes shared the cores")
    parser.add_argument("--name", default="throughput",
                        help="results file name: <out>/<name>.json and <name>.md (one per model keeps runs apart)")
    parser.add_argument("--numerics", action="store_true",
                        help="compare the losses of each optimizer kernel and compile (not timed)")
    args = parser.parse_args(argv)
    from tsdl.ray_connection import configure_output

    configure_output(verbose=False)  # MLflow's "Creating initial MLflow database tables" INFO lines
    if args.smoke:
        args.epochs, args.repeats, args.models = 1, 1, args.models[:1]
        args.paths = [p for p in args.paths if p in SMOKE_PATHS]
    if args.numerics:
        data_dir = Path(tempfile.mkdtemp(prefix="tsdl-bench-numerics-"))
        found = {m: numerics(_config(m, smoke=args.smoke, workdir=data_dir)[0], epochs=args.epochs, workdir=data_dir)
                 for m in args.models}
        return {"numerics": found}
    paths = list(dict.fromkeys(["plain", *args.paths, "tsdl"])) + (["ddp"] if args.ddp else [])
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    loads: list[float] = []
    others: list[float | None] = []
    data_dir = Path(tempfile.mkdtemp(prefix="tsdl-bench-data-"))
    for model in args.models:
        config, dataset = _config(model, smoke=args.smoke, workdir=data_dir)
        if model == "dlinear":
            diff = check_plain_matches_tsdl(config)
            print(f"plain DLinear == tsdl DLinear: max |difference| {diff:.2e}", flush=True)
        for repeat in range(args.repeats):
            for path in paths:
                if not args.smoke:  # results that count: start each run on a machine at rest
                    _common.wait_until_quiet(MAX_OTHERS)
                loads.append(os.getloadavg()[0])
                with _common.CpuShare() as share, tempfile.TemporaryDirectory(prefix="tsdl-bench-") as tmp:
                    if path.startswith("plain"):
                        run = plain_run(config, epochs=args.epochs + 1, threads=_CORES, variant=path, workdir=Path(tmp))
                    else:
                        run = tsdl_run(config, epochs=args.epochs + 1, workdir=Path(tmp), ddp=path == "ddp",
                                       settings=TSDL_VARIANTS.get(path, []))
                others.append(share.others)
                loads.append(os.getloadavg()[0])
                busy = "?" if others[-1] is None else f"{others[-1]:.0%}"
                runs.append({"model": model, "repeat": repeat, "path": path, "load_1m": round(loads[-1], 1),
                             "others_cpu_share": others[-1], **run})
                split = run["epoch_split_s"]
                print(f"{model} repeat {repeat} {path:>19}: {run['windows_per_s']:>10,.0f} win/s whole epoch, "
                      f"{run['train_windows_per_s']:>10,.0f} train steps; epoch {split['train']:.3f} s train + "
                      f"{split['validation']:.3f} s val + {split['rest']:.3f} s rest (others' CPU {busy}, load "
                      f"{loads[-1]:.1f})", flush=True)
        rows.append(_summary(model, dataset, [r for r in runs if r["model"] == model], paths))
    columns = ["model", *(f"{p}_win_s" for p in paths), *(k for k in rows[0] if "/" in k and not k.endswith(
        ("_range", "_only"))), "fastest_plain", "fastest_tsdl"]
    _common.print_table(rows, columns, title="whole-epoch windows/s (median of repeats; ratios paired per repeat)")
    payload = {"settings": vars(args) | {"out": str(args.out), "cores": _CORES}, "summary": rows, "runs": runs,
               "max_load_1m": round(max(loads), 1), "max_others_cpu_share": _worst(others)}
    refusal = None if args.smoke or args.force else too_loaded(_worst(others), _CORES)
    if refusal:
        print(f"NOT writing results: {refusal}", flush=True)
        payload["refused"] = refusal
        return payload
    path = _common.write_results(args.name, payload, args.out, smoke=args.smoke)
    table = path.with_suffix(".md")
    table.write_text("\n\n".join(docs_table(row, [r for r in runs if r["model"] == row["model"]]) for row in rows) + "\n")
    print(f"wrote {table}", flush=True)
    return payload


def docs_table(row: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """docs/benchmarks.md section 1's table for one model: each plain row next to its tsdl
    partner (median whole-epoch win/s, paired ratio median [range]), tsdl's defaults against the
    fastest plain row (whole epochs and training steps only), and the median epoch split."""
    def ratio(name: str) -> str:
        low, high = row[f"{name}_range"]
        return f"{row[name]:.2f} [{low:.2f}-{high:.2f}]"

    def split(path: str) -> str:
        parts = [r["epoch_split_s"] for r in runs if r["path"] == path]
        return " + ".join(f"{statistics.median(p[k] for p in parts):.3f}" for k in ("train", "validation", "rest"))

    lines = [f"{row['model']}, {row['dataset']}, {row['threads']} threads: whole-epoch windows/s, median of "
             f"{len({r['repeat'] for r in runs})} repeats; epoch seconds train + validation + rest (median)", "",
             "| row | win/s | epoch s | row | win/s | epoch s | tsdl / plain at the same setting (paired) |",
             "|---|---|---|---|---|---|---|"]
    for tsdl_path, plain_path in PAIRS.items():
        if f"{plain_path}_win_s" in row and f"{tsdl_path}_win_s" in row:
            lines.append(f"| {plain_path} | {row[f'{plain_path}_win_s']:,.0f} | {split(plain_path)} | {tsdl_path} | "
                         f"{row[f'{tsdl_path}_win_s']:,.0f} | {split(tsdl_path)} | {ratio(f'{tsdl_path}/{plain_path}')} |")
    fastest = row["fastest_plain"]
    steps = _paired({(r["repeat"], r["path"]): r for r in runs}, sorted({r["repeat"] for r in runs}), "tsdl", fastest,
                    "train_windows_per_s")
    lines.append(f"| | | | tsdl (defaults) | {row['tsdl_win_s']:,.0f} | {split('tsdl')} | **tsdl / {fastest} (the "
                 f"fastest plain row): {ratio('tsdl/fastest')}**; training steps only {statistics.median(steps):.2f} "
                 f"[{min(steps):.2f}-{max(steps):.2f}]; fastest tsdl row {row['fastest_tsdl']}: "
                 f"{ratio('tsdl_best/fastest')} |")
    if "ddp/tsdl_range" in row:
        lines.append(f"| | | | ddp (2 ranks x 1 thread) | {row['ddp_win_s']:,.0f} | {split('ddp')} | ddp / tsdl "
                     f"{ratio('ddp/tsdl')} |")
    return "\n".join(lines)


def _worst(shares: list[float | None]) -> float | None:
    return None if None in shares else max(shares)


if __name__ == "__main__":
    main(sys.argv[1:])
