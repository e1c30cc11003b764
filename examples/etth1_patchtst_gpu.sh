#!/usr/bin/env bash
# PatchTST/42 on ETTh1 at H=96 and 192 with the authors' recipe (examples/etth1-patchtst-h{96,192}.yaml),
# on one GPU, next to the published numbers (0.375 / 0.414 MSE; docs/benchmarks.md). About 100
# epochs of 57k windows per horizon: minutes on a GPU, hours on a CPU.
#
#   bash examples/etth1_patchtst_gpu.sh                  # ETTh1 by name (tsdl's dataset cache)
#   bash examples/etth1_patchtst_gpu.sh path/ETTh1.csv   # a local copy of ETTh1.csv
#   TSDL_PATCHTST_CPU=1 bash examples/etth1_patchtst_gpu.sh ...   # no GPU: the same runs on the CPU
#
# Runs go to $TSDL_PATCHTST_DIR (default: a new temporary directory), tracking off. The last lines
# are one per horizon: "PatchTST/42 H=96 test MSE X MAE Y (paper 0.375 / 0.399)".
set -euo pipefail
cd "$(dirname "$0")/.."

data=()
if [ $# -ge 1 ]; then
  [ -f "$1" ] || { echo "etth1_patchtst_gpu.sh: no such file: $1 (give the path of ETTh1.csv, or no argument)" >&2; exit 2; }
  data=(--set data.dataset=null --set "data.path=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")")
fi
gpu=(--set resources.use_gpu=true)
[ -n "${TSDL_PATCHTST_CPU:-}" ] && gpu=()
work="${TSDL_PATCHTST_DIR:-$(mktemp -d -t tsdl-patchtst-XXXXXX)}"
mkdir -p "$work"
echo "etth1_patchtst_gpu: runs in $work"

declare -A paper=([96]="0.375 / 0.399" [192]="0.414 / 0.421")
for h in 96 192; do
  echo "== PatchTST/42 H=$h (examples/etth1-patchtst-h$h.yaml)"
  tsdl train -c "examples/etth1-patchtst-h$h.yaml" "${data[@]}" "${gpu[@]}" \
    --set tracking.enabled=false --set "resources.storage_path=$work/results" | tee "$work/h$h.log"
done
for h in 96 192; do
  python - "$work/h$h.log" "$h" "${paper[$h]}" <<'PY'
import re
import sys

text = open(sys.argv[1]).read()
table = text[text.index("test (normalized)") : text.index("test (original scale)")]
mse = re.search(r"^MSE\s+(\S+)", table, re.MULTILINE).group(1)
mae = re.search(r"^MAE\s+(\S+)", table, re.MULTILINE).group(1)
print(f"PatchTST/42 H={sys.argv[2]} test MSE {mse} MAE {mae} (paper {sys.argv[3]})")
PY
done
