"""benchmarks/bench_hagan.py at 32³ (hagan-tiny): both modes run and end in one JSON line with the figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_hagan.py"


def _run(*args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MEDGAN3D_ALLOCATOR="system")  # no re-exec: one start only
    cmd = [sys.executable, str(SCRIPT), "--res", "32", "--batch", "2", "--repeats", "1", *args]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_train_mode_reports_one_iteration_and_its_phases() -> None:
    r = _run("--mode", "train")
    assert (r["mode"], r["res"], r["batch"], r["threads"], r["device"]) == ("train", 32, 2, 1, "cpu")
    assert r["s_per_iter"] > 0 and r["peak_rss_mib"] > 0
    assert set(r["phase_s"]) == {"D", "G", "E_H", "E_G"} and all(v > 0 for v in r["phase_s"].values())
    assert sum(r["phase_s"].values()) <= r["s_per_iter"] * 1.001
    for key in ("reference_s_per_iter", "reference_peak_rss_mib", "speedup_vs_reference_low"):
        assert key in r and r[key] is None  # the reference is for 128³, batch 2, 1 thread only


def test_infer_mode_runs_both_variants_and_they_agree() -> None:
    r = _run("--mode", "infer", "--chunk-depth", "3")  # 8 latent slices: slabs of 3, 3, 2
    assert r["mode"] == "infer" and r["chunk_depth"] == 3 and r["batch"] == 2
    for variant in ("chunked", "whole"):
        assert r[variant]["s"] > 0 and r[variant]["peak_rss_mib"] > 0
    assert r["max_abs_diff"] <= 1e-4
