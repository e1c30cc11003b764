#!/usr/bin/env bash
# Runs the test suite on TSDL_TEST_WORKERS pytest-xdist workers (default 2: one per core of the CI
# box; Ray start-up, subprocess waits and polling leave a core idle in a serial run). 0 or 1 runs
# serially. A module's tests stay on one worker, and the slowest modules start first (tests/conftest.py).
# "no tests collected" (pytest exit 5, with or without workers) is a failure, not a pass.
set -uo pipefail
PY=${1:-python}
shift || true
WORKERS=${TSDL_TEST_WORKERS:-2}
if ! [[ "$WORKERS" =~ ^[0-9]+$ ]]; then
  echo "error: TSDL_TEST_WORKERS=$WORKERS is not a number of workers; use e.g. TSDL_TEST_WORKERS=2 (0 or 1: serial)" >&2
  exit 2
fi
if [ "$WORKERS" -le 1 ]; then
  "$PY" -m pytest "$@"
else
  "$PY" -m pytest -n "$WORKERS" --dist loadfile --no-loadscope-reorder "$@"
fi
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
