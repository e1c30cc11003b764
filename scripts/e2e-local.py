#!/usr/bin/env python3
"""`make e2e-local`: run the rendered RayJob on the emulated cluster, print one summary line.

The cluster is tests/deploy/emulated_cluster.py (pods as sandboxed processes: needs root and
mount namespaces, e.g. CI); the scenario and its assertions are tests/deploy/test_emulated_cluster.py.
Full output goes to the log file named in the summary; --verbose shows it instead.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/deploy/test_emulated_cluster.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="show pytest's output")
    args = parser.parse_args()
    command = [sys.executable, "-m", "pytest", TEST, "-rs", "-p", "no:cacheprovider"]
    start = time.monotonic()
    if args.verbose:
        return subprocess.call(command, cwd=REPO)
    log = Path(tempfile.mkstemp(prefix="tsdl-e2e-local-", suffix=".log")[1])
    with log.open("w") as out:
        code = subprocess.call(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    tail = [line for line in text.splitlines() if line.strip()]
    counts = re.findall(r"\d+ (?:passed|failed|skipped|error)", tail[-1] if tail else "")
    skipped = re.findall(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", text)
    verdict = "PASSED" if code == 0 and not skipped else ("SKIPPED" if code == 0 else "FAILED")
    why = f" ({skipped[0]})" if skipped else ""
    print(
        f"e2e-local: {verdict}{why}: {', '.join(counts) or 'no result'} in "
        f"{time.monotonic() - start:.0f}s; log {log}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
