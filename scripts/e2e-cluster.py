#!/usr/bin/env python3
"""`make e2e-cluster`: build (or take from the cache) the real cluster parts, run the scenarios of
tests/deploy/test_cluster_scenarios.py on them, print one summary line.

The build is scripts/cluster/build.sh (Go module proxy and pip on first use, then
~/.cache/tsdl-e2e). The cluster (real control plane and KubeRay operator) needs root and Linux
namespaces, e.g. CI. Its nodes are our node agent (the default), or with TSDL_E2E_NODES=kubelet a
real kubelet + containerd running the project's image, built from the Dockerfile with podman on
first use (tests/deploy/cluster/image.py; cached by a hash of what goes into it). Full output
goes to the log named in the summary; --verbose shows it instead.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/deploy/test_cluster_scenarios.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--verbose", action="store_true", help="show the build's and pytest's output"
    )
    parser.add_argument("-k", help="only the scenarios matching this pytest -k expression")
    args = parser.parse_args()
    start = time.monotonic()
    sys.path.insert(0, str(REPO))
    from tests.deploy.cluster import node_mode
    from tests.deploy.cluster.sandbox import sandbox_unavailable

    try:
        mode = node_mode()
    except ValueError as exc:
        print(f"e2e-cluster: error: {exc}", file=sys.stderr)
        return 2
    if mode == "kubelet":  # build.sh installs the node's Debian packages on first use
        reason = "a kubelet node needs root" if os.geteuid() != 0 else None
    else:
        reason = sandbox_unavailable()
    if reason:  # nothing to build for: the scenarios cannot run on this machine
        print(f"e2e-cluster: SKIPPED ({reason})")
        return 0
    build = subprocess.run(["bash", str(REPO / "scripts" / "cluster" / "build.sh")],
                           capture_output=not args.verbose, text=True)  # fmt: skip
    if build.returncode != 0:
        print(
            f"e2e-cluster: FAILED: building the cluster parts: {(build.stderr or '').strip()[-500:]}"
        )
        return build.returncode
    if mode == "kubelet":  # the project's image, before the clock of any scenario starts
        image = subprocess.run([sys.executable, "-m", "tests.deploy.cluster.image"], cwd=REPO,
                               capture_output=True, text=True)  # fmt: skip
        print((image.stdout + image.stderr).strip())
        if image.returncode != 0:
            return image.returncode
    built = time.monotonic() - start
    if not args.verbose:
        sys.stdout.write(build.stdout.rsplit("\n", 2)[0] + "\n" if build.stdout else "")
        for line in (build.stderr or "").splitlines():
            print(line)
    command = [
        sys.executable,
        "-m",
        "pytest",
        TEST,
        "-rs",
        "-p",
        "no:cacheprovider",
        "--durations=0",
    ]
    if args.k:
        command += ["-k", args.k]
    env = {**os.environ, "TSDL_E2E_CLUSTER": "1"}
    if args.verbose:
        return subprocess.call(command, cwd=REPO, env=env)
    log = Path(tempfile.mkstemp(prefix="tsdl-e2e-cluster-", suffix=".log")[1])
    with log.open("w") as out:
        code = subprocess.call(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    text = log.read_text(errors="replace")
    tail = [line for line in text.splitlines() if line.strip()]
    counts = re.findall(
        r"\d+ (?:passed|failed|skipped|xfailed|xpassed|error)", tail[-1] if tail else ""
    )
    skipped = re.findall(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", text)
    verdict = "PASSED" if code == 0 and not skipped else ("SKIPPED" if code == 0 else "FAILED")
    why = f" ({skipped[0]})" if skipped else ""
    print(
        f"e2e-cluster ({mode} nodes): {verdict}{why}: {', '.join(counts) or 'no result'} in "
        f"{time.monotonic() - start:.0f}s (parts {built:.0f}s); log {log}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
