"""What every benchmark shares: CLI flags, configs, machine facts, tables and JSON results.

Benchmarks run as scripts (``python bench/<name>.py``), so this module is imported as
``_common`` from the script's own directory. Every result file records the machine, the date and
the exact command next to the numbers, because ratios on a shared 2-core box are only
meaningful together with where and when they were measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ETTH1",
    "EXAMPLES",
    "REPO_ROOT",
    "RESULTS",
    "base_parser",
    "etth1_config",
    "machine_info",
    "peak_rss_mb",
    "print_table",
    "synthetic_config",
    "write_results",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
ETTH1 = REPO_ROOT / ".." / "shared" / "data" / "ETTh1.csv"
EXAMPLES = REPO_ROOT / "examples"
RESULTS = REPO_ROOT / "bench" / "results"

# Ray Train V2 is what tsdl targets; set it before any Ray import in a benchmark process.
os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


def base_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the flags every benchmark has: ``--smoke`` and ``--out``."""
    text = (doc or "").strip()
    parser = argparse.ArgumentParser(
        description=text.splitlines()[0] if text else None,
        epilog="\n".join(text.splitlines()[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny synthetic run (seconds) that checks the script still works"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the JSON (and PNG) results")
    return parser


def etth1_config(example: str = "etth1.yaml", overrides: Iterable[str] = ()):
    """An ``examples/`` config reading the shared ETTh1 file directly (no cache) and tracking off.

    Returns None when ``../shared`` is absent (a user's clone), so callers can fall back to
    synthetic data and say so.
    """
    from tsdl.config import load_config

    if not ETTH1.exists():
        return None
    base = ["data.dataset=", f"data.path={ETTH1.resolve()}", "tracking.enabled=false"]
    return load_config(EXAMPLES / example, overrides=[*base, *overrides])


def synthetic_config(
    *,
    n_series: int = 4,
    n_timesteps: int = 400,
    input_chunk_length: int = 48,
    output_chunk_length: int = 12,
    overrides: Iterable[str] = (),
):
    """A generated dataset config (no file) with tracking off: smoke runs and scaling studies."""
    from tsdl.config import parse_config

    raw = {
        "experiment": {"name": "bench"},
        "data": {
            "synthetic": {"n_series": n_series, "n_timesteps": n_timesteps, "seed": 0},
            "input_chunk_length": input_chunk_length,
            "output_chunk_length": output_chunk_length,
        },
        "tracking": {"enabled": False},
    }
    return parse_config(raw, overrides=list(overrides))


def machine_info() -> dict[str, Any]:
    """Where and when: CPU, cores, load, library versions, UTC date and the exact command."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "command": "python " + shlex.join(sys.argv),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:
        pass
    return info


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class CpuShare:
    """How much of the machine other processes used while a benchmark ran.

    The 1-minute load average cannot say that: it counts the benchmark's own threads (a run on
    every core alone reaches the core count, and its Ray processes push it above). This takes the
    machine's busy CPU seconds from /proc/stat and subtracts the CPU seconds of this process and
    its descendants. Those are counted two ways, and the larger wins (what is missed only makes
    the check stricter): a sampler thread notes each descendant's own CPU time every `every`
    seconds, which keeps the work of processes that die orphaned (Ray's workers at shutdown are
    reaped by init, so no parent's cutime holds them); and at the end the live tree's times with
    the children they reaped, which keeps short-lived children the sampler never saw.
    Use as a context manager; `others` is None where /proc is missing (not Linux).
    """

    def __init__(self, every: float = 0.5) -> None:
        self._every, self._seen = every, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cpu-share", daemon=True)
        self.others: float | None = None
        self.own = self.busy = 0.0  # CPU seconds: this process tree's, and the whole machine's

    def __enter__(self) -> CpuShare:
        self._wall, self._busy = time.monotonic(), _busy_seconds()
        self._tree = _tree_seconds(os.getpid(), self._seen)
        self._start = dict(self._seen)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        wall, busy = time.monotonic() - self._wall, _busy_seconds()
        tree = _tree_seconds(os.getpid(), self._seen)
        if None in (busy, self._busy, tree, self._tree) or wall <= 0:
            return
        sampled = sum(t - self._start.get(pid, 0.0) for pid, t in self._seen.items())
        self.own, self.busy = max(tree - self._tree, sampled), busy - self._busy
        self.others = max(0.0, self.busy - self.own) / (wall * (os.cpu_count() or 1))

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            _tree_seconds(os.getpid(), self._seen)


def wait_until_quiet(max_others: float = 0.10, *, settle: float = 1.0, timeout: float = 60.0) -> float | None:
    """Wait until other processes use at most `max_others` of the cores over `settle` seconds
    (Ray's workers from the run before go on burning CPU for a moment after shutdown); gives up
    after `timeout` s. Returns the last share measured (None: no /proc)."""
    deadline = time.monotonic() + timeout
    while True:
        with CpuShare(every=settle) as share:
            time.sleep(settle)
        if share.others is None or share.others <= max_others or time.monotonic() > deadline:
            return share.others


def _busy_seconds() -> float | None:
    """CPU seconds all processes spent since boot (user, nice, system, irq, softirq; not steal)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in first[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _tree_seconds(root: int, seen: dict[int, float] | None = None) -> float | None:
    """CPU seconds of `root` and every live descendant, including the children they reaped.

    `seen` (pid -> the process's own CPU seconds) is updated with every live descendant."""
    children: dict[int, list[int]] = {}
    own: dict[int, float] = {}
    reaped: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # exited while we looked
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        own[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime stime
        reaped[pid] = (int(fields[13]) + int(fields[14])) / tick  # cutime cstime
    tree, frontier = {root}, [root]
    while frontier:
        fresh = [c for c in children.get(frontier.pop(), []) if c not in tree]
        tree.update(fresh)
        frontier.extend(fresh)
    if seen is not None:
        seen.update({pid: own[pid] for pid in tree if pid in own})
    return sum(own.get(pid, 0.0) + reaped.get(pid, 0.0) for pid in tree)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, title: str = "") -> str:
    """Render ``rows`` as a fixed-width text table (floats with 4 significant digits); print it."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
        return "" if value is None else str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def write_results(name: str, payload: Mapping[str, Any], out_dir: Path, *, smoke: bool) -> Path:
    """Write ``{machine, **payload}`` to ``out_dir/<name>[.smoke].json``; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}{'.smoke' if smoke else ''}.json"
    document = {"benchmark": name, "smoke": smoke, "machine": machine_info(), **payload}
    path.write_text(json.dumps(document, indent=2, default=_jsonable) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
