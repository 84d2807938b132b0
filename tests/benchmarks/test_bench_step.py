"""benchmarks/bench_step.py against a git revision (HEAD, in a temporary worktree) on the tiny preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_step_against_head_reports_every_phase_side_by_side(tmp_path: Path) -> None:
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    env = dict(os.environ, OMP_NUM_THREADS="1", MEDGAN3D_ALLOCATOR="system")
    out = tmp_path / "figures.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_step.py"),
        "--presets",
        "tiny",
        "--precisions",
        "fp32",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--against",
        "HEAD",
        "--json",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "s/kimg: this" in proc.stdout and "| ratio" in proc.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["trees"] == ["this", "HEAD"]
    tiny = figures["configs"]["tiny/fp32"]
    for tree in ("this", "HEAD"):
        phases = tiny[tree]["per_phase"]
        assert set(phases) == {"Gmain", "Greg", "Dmain", "Dreg"}
        assert all(p["ms"] > 0 and p["ops"] > 100 and p["saved_peak"] > 0 for p in phases.values())
        assert tiny[tree]["syncs_per_iter"] == 0  # HEAD has the sync-free step too
    worktrees = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, encoding="utf-8"
    )
    assert "bench-step-" not in worktrees.stdout  # the temporary worktree is gone
