#!/usr/bin/env bash
# The fine-tuning example of docs/finetuning.md, end to end: pretrain DLinear on six of ETTh1's
# seven channels, score that model zero-shot on the seventh (HUFL, a meter with 10 weeks of
# history), fine-tune it on those 10 weeks, train the same model on the same weeks from scratch,
# and compare all of them with seasonal naive on the same HUFL test windows (normalized test MSE).
#
#   bash examples/finetune_hufl.sh                  # ETTh1 by name (tsdl's dataset cache)
#   bash examples/finetune_hufl.sh path/ETTh1.csv   # a local copy of ETTh1.csv
#
# Runs and checkpoints go to $TSDL_FT_DIR (default: a new temporary directory), so the example
# never touches ./mlflow.db, whatever $MLFLOW_TRACKING_URI says; TSDL_FT_PARENT=<MLflow run id> (with
# the same TSDL_FT_DIR) skips the pretraining and reuses that run. The last line is
#   zero-shot X fine-tuned Y scratch Z seasonal-naive W (fine-tuned: -a% vs zero-shot, -b% vs scratch, ...)
# and the script exits 1 (one line on stderr) when fine-tuned is not below the other three.
set -euo pipefail
cd "$(dirname "$0")/.."

data=()
if [ $# -ge 1 ]; then
  [ -f "$1" ] || { echo "finetune_hufl.sh: no such file: $1 (give the path of ETTh1.csv, or no argument)" >&2; exit 2; }
  data=(--set data.dataset=null --set "data.path=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")")
fi
work="${TSDL_FT_DIR:-$(mktemp -d -t tsdl-ft-XXXXXX)}"
mkdir -p "$work"
# --tracking-uri, not tracking.tracking_uri: the flag beats $MLFLOW_TRACKING_URI (which beats the
# config), so every step reads and writes this one store whatever the user's environment says.
uri="sqlite:///$work/mlflow.db"
store=(--tracking-uri "$uri" --set "resources.storage_path=$work/results")
echo "finetune_hufl: runs in $work"

run_id() { sed -n 's/^mlflow run: \([0-9a-f]*\).*/\1/p' "$1" | tail -n 1; }

if [ -n "${TSDL_FT_PARENT:-}" ]; then  # reuse a pretraining of an earlier run in the same $TSDL_FT_DIR
  parent="$TSDL_FT_PARENT"
  echo "== 1/4 pretrain: reusing MLflow run $parent"
else
  echo "== 1/4 pretrain on the six other channels (examples/etth1_pretrain.yaml)"
  tsdl train -c examples/etth1_pretrain.yaml "${data[@]}" "${store[@]}" | tee "$work/pretrain.log"
  parent="$(run_id "$work/pretrain.log")"
fi

echo "== 2/4 zero-shot: the pretrained model on HUFL's test windows"
tsdl evaluate --run-id "$parent" --tracking-uri "$uri" \
  -c examples/etth1_finetune_hufl.yaml "${data[@]}" | tee "$work/zeroshot.log"

echo "== 3/4 fine-tune on HUFL's 10 weeks (examples/etth1_finetune_hufl.yaml)"
tsdl train -c examples/etth1_finetune_hufl.yaml --init-from "$parent" "${data[@]}" "${store[@]}" \
  | tee "$work/finetune.log"

echo "== 4/4 the same model from scratch on the same HUFL weeks (examples/etth1_scratch_hufl.yaml)"
tsdl train -c examples/etth1_scratch_hufl.yaml "${data[@]}" "${store[@]}" | tee "$work/scratch.log"

python - "$work" <<'EOF'
import re
import sys
from pathlib import Path

work = Path(sys.argv[1])


def mse(log: str) -> tuple[str, str]:
    """(model, seasonal-naive) MSE of the normalized test table a tsdl command printed."""
    text = (work / log).read_text()
    table = text[text.index("test (normalized)") : text.index("test (original scale)")]
    row = re.search(r"^MSE\s+(\S+)\s+(\S+)", table, re.MULTILINE)
    if row is None:
        sys.exit(f"finetune_hufl.sh: no MSE row in {work / log}")
    return row.group(1), row.group(2)


zero, naive = mse("zeroshot.log")
tuned, naive_tuned = mse("finetune.log")
scratch, naive_scratch = mse("scratch.log")
if len({naive, naive_tuned, naive_scratch}) != 1:
    sys.exit(f"finetune_hufl.sh: the runs were scored on different windows (naive MSE {naive}, "
             f"{naive_tuned}, {naive_scratch})")
gains = ", ".join(f"{(float(tuned) / float(other) - 1) * 100:+.1f}% vs {name}"
                  for name, other in (("zero-shot", zero), ("scratch", scratch), ("seasonal-naive", naive)))
print(f"zero-shot {zero} fine-tuned {tuned} scratch {scratch} seasonal-naive {naive} (fine-tuned: {gains})")
beaten = [name for name, other in (("zero-shot", zero), ("scratch", scratch), ("seasonal-naive", naive))
          if float(tuned) >= float(other)]
if beaten:
    sys.exit(f"finetune_hufl.sh: fine-tuned {tuned} is not below {', '.join(beaten)} (docs/finetuning.md says it was)")
EOF
