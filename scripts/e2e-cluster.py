#!/usr/bin/env python3
"""`make e2e-cluster`: build (or take from the cache) the real cluster parts, run the scenarios of
tests/deploy/test_cluster_scenarios.py on them, print one summary line.

The build is scripts/cluster/build.sh (Go module proxy, pip and apt-get on first use, then
~/.cache/tsdl-e2e), then the project's image from its Dockerfile with podman
(tests/deploy/cluster/image.py; cached by a hash of what goes into it). The cluster (real control
plane, KubeRay operator, two kubelet nodes with containerd) needs root, e.g. CI. Full output goes
to the log named in the summary; --verbose shows it instead.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/deploy/test_cluster_scenarios.py"
# What a failed scenario prints besides the log (CI keeps only the output's tail, not the log): the
# assertion, then the lines of tests/deploy/test_cluster_scenarios.py describe() a reader needs
# first: the RayJob's status, the pods (restarts, last exits) and the warnings.
FIRST_LINES = 3
DESCRIBE_PREFIXES = ("rayjob ", "pod ", "event ")
LINE_LIMIT = 300
MAX_LINES = 25
# pytest cuts an assertion message to 8 lines outside CI: describe() goes whole into log and XML
UNTRUNCATED = ("-o", "truncation_limit_lines=0", "-o", "truncation_limit_chars=0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--verbose", action="store_true", help="show the build's and pytest's output"
    )
    parser.add_argument("-k", help="only the scenarios matching this pytest -k expression")
    args = parser.parse_args()
    start = time.monotonic()
    if os.geteuid() != 0:  # nothing to build for: the nodes cannot run on this machine
        print("e2e-cluster: SKIPPED (the kubelet nodes need root: cgroups, mounts, network)")
        return 0
    build = subprocess.run(["bash", str(REPO / "scripts" / "cluster" / "build.sh")],
                           capture_output=not args.verbose, text=True)  # fmt: skip
    if build.returncode != 0:
        print(
            f"e2e-cluster: FAILED: building the cluster parts: {(build.stderr or '').strip()[-500:]}"
        )
        return build.returncode
    # The project's image, before the clock of any scenario starts.
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
        *UNTRUNCATED,
    ]
    if args.k:
        command += ["-k", args.k]
    env = {**os.environ, "TSDL_E2E_CLUSTER": "1"}
    if args.verbose:
        return subprocess.call(command, cwd=REPO, env=env)
    log = Path(tempfile.mkstemp(prefix="tsdl-e2e-cluster-", suffix=".log")[1])
    junit = log.with_suffix(".xml")
    command += [f"--junitxml={junit}"]
    with log.open("w") as out:
        code = subprocess.call(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    for line in failures(junit):
        print(line)
    text = log.read_text(errors="replace")
    tail = [line for line in text.splitlines() if line.strip()]
    counts = re.findall(
        r"\d+ (?:passed|failed|skipped|xfailed|xpassed|error)", tail[-1] if tail else ""
    )
    skipped = re.findall(r"SKIPPED \[\d+\] [^:]+:\d+: (.*)", text)
    verdict = "PASSED" if code == 0 and not skipped else ("SKIPPED" if code == 0 else "FAILED")
    why = f" ({skipped[0]})" if skipped else ""
    print(
        f"e2e-cluster: {verdict}{why}: {', '.join(counts) or 'no result'} in "
        f"{time.monotonic() - start:.0f}s (parts {built:.0f}s); log {log}"
    )
    return code


def failures(junit: Path) -> list[str]:
    """One block per failed or erred scenario, from pytest's JUnit XML: its name and time, the
    assertion's first lines and describe()'s status lines (at most MAX_LINES, each cut to
    LINE_LIMIT characters)."""
    if not junit.exists():
        return []
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        for bad in [*case.findall("failure"), *case.findall("error")]:
            # the report's `E` lines: its message attribute is cut after 50 lines
            report = (bad.text or "").splitlines()
            message = [m[1:].strip() for m in report if m.startswith("E ")]
            message = [m for m in message if m] or [bad.get("message") or bad.tag]
            lines = message[:FIRST_LINES]
            lines += [m for m in message[FIRST_LINES:] if m.startswith(DESCRIBE_PREFIXES)]
            verdict = "FAILED" if bad.tag == "failure" else "ERROR"
            out.append(f"e2e-cluster: {verdict} {case.get('name')} "
                       f"({float(case.get('time') or 0):.0f}s):")  # fmt: skip
            out += [f"  {m[:LINE_LIMIT]}" for m in lines[:MAX_LINES]]
    return out


if __name__ == "__main__":
    sys.exit(main())
