"""`bench_accuracy.py --table`: every cell's config is generated and loadable, and the table puts
the published numbers (never invented ones) next to the cells that were not measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tsdl.config import load_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_table_writes_every_cell_config_and_prints_the_grid(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "bench_accuracy.py"), "--table", "--print-only", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    configs = sorted((tmp_path / "accuracy-configs").glob("*.yaml"))
    assert len(configs) == 2 * 4 * 4  # ETTh1/ETTh2 x 4 horizons x 4 models
    cell = load_config(tmp_path / "accuracy-configs" / "ETTh2-patchtst-720.yaml")
    assert (cell.data.dataset, cell.data.input_chunk_length, cell.data.output_chunk_length) == ("ETTh2", 336, 720)
    assert cell.model.name == "patchtst" and cell.data.path is None
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ETTh")]
    assert len(rows) == 8
    etth1_96 = [c.strip() for c in rows[0].strip("|").split("|")]
    assert etth1_96[:4] == ["ETTh1", "96", "not run", "0.375 / 0.399"]  # DLinear, Zeng et al. Table 2
    assert "0.329 / -" in rows[6]  # ETTh2 H=336 PatchTST/64: the MAE could not be verified
    stored = json.loads((tmp_path / "accuracy-table.json").read_text())
    assert stored["cells"] == {} and "not run (32 cells)" in done.stdout
