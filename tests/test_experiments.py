"""experiments/inflation_sweep.py at the smallest budget: it runs end to end and its outputs agree."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "inflation_sweep.py"


def test_inflation_sweep_writes_csv_plot_and_table(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    args = ["--out", str(out), "--strategies", "none,inflate-1", "--parts", "G,GD", "--kimg", "0.016",
            "--snap-kimg", "0.008", "--pretrain-kimg", "0.032", "--samples", "6"]  # fmt: skip
    subprocess.run([sys.executable, str(SCRIPT), *args], check=True, capture_output=True, timeout=600)
    with open(out / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    runs = {(r["strategy"], r["parts"]) for r in rows}
    assert runs == {("none", "GD"), ("inflate-1", "G"), ("inflate-1", "GD")}
    for run in runs:  # kimg 0 plus one score per snapshot
        kimgs = [float(r["kimg"]) for r in rows if (r["strategy"], r["parts"]) == run]
        assert kimgs == [0.0, 0.008, 0.016]
    assert all(float(r["fid_avg"]) > 0 and "random" in r["extractor"] for r in rows)
    # kimg 0: inflate-1 of G gives the same start for G and GD (D does not affect G's samples)
    start = {(r["strategy"], r["parts"]): float(r["fid_avg"]) for r in rows if float(r["kimg"]) == 0}
    assert start[("inflate-1", "G")] == start[("inflate-1", "GD")] != start[("none", "GD")]
    assert (out / "fid_vs_kimg.png").stat().st_size > 0
    table = (out / "table.md").read_text(encoding="utf-8")
    assert table.count("| inflate-1 |") == 2 and "extractor: random" in table
