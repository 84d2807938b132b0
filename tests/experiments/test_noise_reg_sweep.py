"""experiments/noise_reg_sweep.py at the smallest budget: it runs end to end and its table agrees with its CSV."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "noise_reg_sweep.py"


def test_noise_reg_sweep_writes_csv_and_table(tmp_path: Path) -> None:
    env = dict(os.environ, MEDGAN3D_ALLOCATOR="system", OMP_NUM_THREADS="1")
    cli = [sys.executable, "-m", "medgan3d"]
    subprocess.run(
        [*cli, "prepare", "brain-phantom", "-n", "6", "--shape", "16", "-o", str(tmp_path / "data")],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    subprocess.run(
        [
            *cli,
            "train",
            "--data",
            str(tmp_path / "data"),
            "--config",
            "tiny",
            "--kimg",
            "0.008",
            "--out",
            str(tmp_path / "runs"),
        ],
        check=True,
        capture_output=True,
        env=env,
        timeout=300,
    )
    (run,) = (tmp_path / "runs").iterdir()
    args = [
        "--run",
        str(run),
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "sweep"),
        "--limit",
        "1",
        "--steps",
        "4",
        "--weights",
        "0,1e5",
        "--w-avg-samples",
        "50",
        "--noise-strength",
        "0.3",
    ]
    subprocess.run(
        [sys.executable, str(SCRIPT), *args], check=True, capture_output=True, env=env, timeout=300
    )
    with open(tmp_path / "sweep" / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["weight"]) for r in rows] == [0.0, 1e5]
    table = (tmp_path / "sweep" / "table.md").read_text(encoding="utf-8")
    assert "noise strength set to 0.3" in table
    for r in rows:
        assert f"| {float(r['weight']):g} | {float(r['psnr_db']):.2f} |" in table
