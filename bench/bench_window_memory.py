"""Peak memory of windowing a 1M-timestep series, relative to the raw float32 array.

Index-based windows keep only per-segment offsets, so the peak stays a small constant times
the raw array (the gather of one batch included) however many windows there are.

    python bench/bench_window_memory.py [--timesteps 1000000] [--batch-size 256]

``--scaling`` runs the end-to-end study instead: peak RSS of data preparation, the Ray row
encoding a worker decodes, and one DLinear training epoch, for 1x/10x/100x the timesteps and for
10 vs 1,000 series (each case in a fresh process), with a JSON file and a log-log plot.

    python bench/bench_window_memory.py --scaling [--smoke]
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc
from pathlib import Path

import numpy as np

from tsdl.data.windows import WindowSet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--input-chunk-length", type=int, default=336)
    parser.add_argument("--output-chunk-length", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--scaling", action="store_true", help="run the RSS scaling study (see above)")
    parser.add_argument("--smoke", action="store_true", help="with --scaling: tiny cases (seconds)")
    parser.add_argument("--out", type=Path, default=None, help="with --scaling: results directory")
    parser.add_argument("--case", nargs=2, type=int, metavar=("N_SERIES", "TIMESTEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case is not None:
        from _memory_scaling import measure_case

        measure_case(*args.case, input_chunk_length=args.input_chunk_length,
                     output_chunk_length=args.output_chunk_length, batch_size=args.batch_size)
        return
    if args.scaling:
        from _memory_scaling import run_study

        run_study(Path(__file__), smoke=args.smoke, out=args.out, batch_size=args.batch_size)
        return
    L, H, T = args.input_chunk_length, args.output_chunk_length, args.timesteps
    raw = np.random.default_rng(0).normal(size=(T, 1)).astype(np.float32)
    times = np.arange(T, dtype=np.int64)
    tracemalloc.start()
    ws = WindowSet(
        raw, times, np.array([[0, T, 0, T - L - H + 1, 0]]), np.array(["s"], dtype=object),
        np.zeros((1, 0)), input_chunk_length=L, output_chunk_length=H, n_future=0, stride=1,
    )
    built, _ = tracemalloc.get_traced_memory()
    n_batches = 0
    for n_batches, _batch in enumerate(ws.batches(args.batch_size, shuffle=True, seed=0), start=1):
        if n_batches >= 200:
            break
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    naive = len(ws) * (L + H) * 4
    print(f"timesteps            {T:>14,}")
    print(f"windows              {len(ws):>14,}")
    print(f"raw array            {raw.nbytes:>14,} B")
    print(f"window index         {built:>14,} B  (after building the WindowSet)")
    print(f"peak while batching  {peak:>14,} B  ({n_batches} shuffled batches of {args.batch_size})")
    print(f"peak / raw           {peak / raw.nbytes:>14.2f}x")
    print(f"materialized windows {naive:>14,} B  ({naive / raw.nbytes:.0f}x raw; not allocated)")


if __name__ == "__main__":
    main(sys.argv[1:])
