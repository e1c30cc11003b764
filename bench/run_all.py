"""Run every benchmark (each in its own process), or a chosen few; ``--smoke`` makes each tiny.

    python bench/run_all.py --smoke                 # what `make bench` and the tests run
    python bench/run_all.py --only throughput peers # full runs of two benchmarks
    python bench/run_all.py --list

Each benchmark prints its table and writes ``<out>/<name>[.smoke].json``; a failing one does not
stop the others, and the exit status is the number of failures (capped at 1).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["BENCHMARKS", "main"]

_HERE = Path(__file__).resolve().parent

# name -> script arguments (the script's own --smoke/--out are appended).
BENCHMARKS: dict[str, list[str]] = {
    "throughput": ["bench_throughput.py"],
    "memory": ["bench_window_memory.py", "--scaling"],
    "startup": ["bench_startup.py"],
    "accuracy": ["bench_accuracy.py"],
    "peers": ["bench_peers.py"],
    "hpo": ["bench_hpo.py"],
    "gpu": ["bench_gpu.py"],
    "instance_norm": ["bench_instance_norm.py"],
    "season_folds": ["bench_season_folds.py"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic runs (the test suite's mode)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run just these")
    parser.add_argument("--out", type=Path, default=None, help="results directory (default bench/results)")
    parser.add_argument("--list", action="store_true", help="print the benchmark names and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    failed: list[str] = []
    for name in args.only or list(BENCHMARKS):
        script, *extra = BENCHMARKS[name]
        cmd = [sys.executable, str(_HERE / script), *extra]
        cmd += ["--smoke"] if args.smoke else []
        cmd += ["--out", str(args.out)] if args.out is not None else []
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.run(cmd, check=False).returncode
        print(f"=== {name}: {'ok' if code == 0 else f'FAILED (exit {code})'} "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
