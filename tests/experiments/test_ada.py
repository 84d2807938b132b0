"""experiments/ada.py (ADA vs no augmentation on a small 3D set) end to end at a toy budget."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import yaml

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import ada  # noqa: E402


@pytest.mark.slow  # four toy runs and their scores: minutes on a shared 2-core machine
def test_ada_driver_at_a_toy_budget(tmp_path: Path) -> None:
    out = tmp_path / "ada"
    argv = [
        "--out",
        str(out),
        "--kimg",
        "0.016",
        "--samples",
        "6",
        "--reference",
        "6",
        "--volumes",
        "4",
        "--seeds",
        "0,1",
        "--ada-kimg",
        "0.004",
    ]
    text = ada.main(argv)
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| Training")]
    assert [r.split(" | ")[0] for r in rows] == [
        "| no augmentation (`--aug none`)",
        "| ADA (`--aug ada`)",
        "| ADA − none, paired by seed",
        "| fresh phantoms, 6 (reference)",
    ]
    assert all(" ± " in r for r in rows[:3])
    with open(out / "ada.csv", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    assert [(r["aug"], r["seed"]) for r in records] == [
        ("none", "0"),
        ("none", "1"),
        ("ada", "0"),
        ("ada", "1"),
    ]
    assert all(float(r["fid_avg"]) > 0 and 0 <= float(r["final_p"]) <= 1 for r in records)
    assert all(float(r["final_p"]) == 0 for r in records if r["aug"] == "none")
    runs = sorted((out / "runs").glob("*/*/config.yaml"))
    assert (
        sorted(yaml.safe_load(p.read_text(encoding="utf-8"))["train"]["aug"] for p in runs)
        == ["ada"] * 2 + ["none"] * 2
    )
    data = yaml.safe_load(
        (out / "data" / "brain-train4-16x16x16" / "dataset.json").read_text(encoding="utf-8")
    )
    assert data["count"] == 4 and len(data["splits"]["train"]) == 4
    again = ada.main(argv)  # a rerun trains nothing and prints the same table
    assert "0 runs trained" in again and again.split("\n_")[0] == text.split("\n_")[0]
