"""The drivers of Liu et al.'s (arXiv 2208.03934) tables (experiments/, docs/results.md): shared machinery, a fast smoke run, and
every driver end to end at a toy budget over three seeds (slow)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import common  # noqa: E402
import inflation_sweep  # noqa: E402
import methods  # noqa: E402

TOY = [
    "--kimg",
    "0.016",
    "--snap-kimg",
    "0.008",
    "--pretrain-kimg",
    "0.032",
    "--samples",
    "6",
    "--subjects",
    "6",
]


def _ctx(out: Path, *extra: str) -> common.Context:
    return common.context(common.parser(None).parse_args(["--out", str(out), *TOY, *extra]))


def test_interval_is_the_student_t_interval() -> None:
    values = [3.0, 5.0, 10.0]
    mean, half = common.mean_ci(values)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(6.0) and half == pytest.approx((hi - lo) / 2)
    assert common.cell(values, 104) == f"6.0 ± {half:.1f} (104)"
    assert common.cell(values, 102.7) == f"6.0 ± {half:.1f} (102.7)" and common.cell([1.0]) == "1.0"
    assert common.cell([0.5, 0.7], 0.75, 4).endswith("(0.7500)")


def test_tables_share_the_rows_the_paper_shares(tmp_path: Path) -> None:
    """Table 3's Baseline is Table 1's No Inflate, Table 4's Baseline is Table 1's Inflate-1, Table 6's
    3D-StyleGAN2 and Split&Shuffle rows are Tables 3 and 4's: the same hash, hence one run."""
    ctx = _ctx(tmp_path)
    sweep = {
        (s, p): inflation_sweep.spec_for(ctx, s, p, 1, None) for s, p in [("none", "GD"), ("inflate-1", "GD")]
    }
    assert sweep[("none", "GD")].key() == common.stylegan_spec(ctx, "heart", "Baseline", 1).key()
    assert sweep[("inflate-1", "GD")].key() == common.inflated_spec(ctx, "heart", "Baseline", 1).key()
    assert methods.method_spec(ctx, "heart", "3D-StyleGAN2", 1).key() == sweep[("none", "GD")].key()
    ours = methods.method_spec(ctx, "heart", "Split&Shuffle (Ours)", 1)
    assert ours.key() == common.inflated_spec(ctx, "heart", "Split&Shuffle", 1, "inflate-1", "GD").key()
    # what only decides what is observed does not change a run; the budget, seed and equalized-lr reading do
    snaps = common.context(
        common.parser(None).parse_args(["--out", str(tmp_path), *TOY, "--snap-kimg", "0.004"])
    )
    assert common.stylegan_spec(snaps, "heart", "Baseline", 1).key() == sweep[("none", "GD")].key()
    other = [
        common.stylegan_spec(ctx, "heart", "Baseline", 2),
        common.stylegan_spec(_ctx(tmp_path, "--kimg", "0.024"), "heart", "Baseline", 1),
        common.inflated_spec(_ctx(tmp_path, "--equalized-lr", "stored"), "heart", "Baseline", 1),
        inflation_sweep.spec_for(ctx, "inflate-1", "GD", 1, tmp_path / "ck2d"),
    ]
    keys = {s.key() for s in [*sweep.values(), *other]}
    assert len(keys) == 2 + len(other)


def test_sweep_rows_are_tables_1_and_2() -> None:
    rows = inflation_sweep.combos(list(inflation_sweep.STRATEGIES), "auto")
    assert len(rows) == 12 and rows[0] == ("none", "GD")
    assert {(s, p) for s, p in rows if p != "GD"} == {(s, p) for s in inflation_sweep.TABLE2 for p in "GD"}
    assert inflation_sweep.combos(["none", "inflate-2"], "G,GD") == [
        ("none", "GD"),
        ("inflate-2", "G"),
        ("inflate-2", "GD"),
    ]


def test_scale_options_apply(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "--batch", "4", "--seeds", "3,4,5")
    assert (ctx.scale.kimg, ctx.scale.batch, ctx.seeds, ctx.scale.subjects["brain"]) == (
        0.016,
        4,
        [3, 4, 5],
        6,
    )
    paper = common.context(common.parser(None).parse_args(["--scale", "paper", "--out", str(tmp_path)]))
    assert (paper.scale.kimg, paper.scale.pretrain_kimg, paper.scale.batch) == (5000.0, 25000.0, 128)
    assert paper.scale.shape == {"heart": (32, 64, 64), "brain": (64, 64, 64)}


def test_an_interrupted_run_is_resumed_to_the_same_weights(tmp_path: Path) -> None:
    import shutil

    import torch

    from medgan3d.training.checkpoint import list_checkpoints, load_generator

    ctx = _ctx(tmp_path, "--subjects", "4")
    spec = common.stylegan_spec(ctx, "brain", "Split&Shuffle", 0)
    run = common.ensure_run(ctx, spec)
    final = load_generator(run).state_dict()
    assert len(list_checkpoints(run)) == 2  # kimg 0.008 and 0.016
    shutil.rmtree(list_checkpoints(run)[-1])  # as if stopped between the two
    (spec.folder(ctx) / "done.json").unlink()
    assert common.ensure_run(ctx, spec) == run and len(list_checkpoints(run)) == 2
    for key, value in load_generator(run).state_dict().items():
        assert torch.equal(value, final[key]), key


def test_smoke_sweep_one_seed(tmp_path: Path) -> None:
    """The fast end-to-end check: two rows, one seed, in-process."""
    out = tmp_path / "smoke"
    text = inflation_sweep.main(
        [
            "--out",
            str(out),
            *TOY,
            "--subjects",
            "4",
            "--seeds",
            "0",
            "--strategies",
            "none,inflate-1",
            "--parts",
            "GD",
        ]
    )
    assert "| No Inflate |" in text and "| Inflate-1 |" in text and "(73.0)" in text
    with open(out / "results.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["kimg"]) for r in rows] == [0.0, 0.008, 0.016] * 2
    assert all(float(r["fid_avg"]) > 0 and "random" in r["extractor"] for r in rows)
    assert (out / "fid_vs_kimg.png").stat().st_size > 0 and (out / "table2.md").is_file()


@pytest.mark.slow
def test_every_driver_end_to_end_at_a_toy_budget(tmp_path: Path) -> None:
    """all_tables.py runs the five drivers over three seeds on one --out; each writes its tables."""
    out = tmp_path / "all"
    cmd = [sys.executable, str(EXPERIMENTS / "all_tables.py"), "--out", str(out), *TOY, "--seeds", "0,1,2"]
    subprocess.run(
        cmd, check=True, capture_output=True, timeout=1200, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    tables = {
        n: (out / f"{n}.md").read_text(encoding="utf-8")
        for n in ("table1", "table2", "table3", "table4", "table6", "table7", "table8")
    }
    rows = {
        n: [ln for ln in t.splitlines() if ln.startswith("| ") and not ln.startswith("| Model")]
        for n, t in tables.items()
    }
    assert [len(rows[n]) for n in tables] == [6, 9, 6, 6, 7, 7, 7]  # 6-7: + fresh phantoms
    assert all("seeds 0, 1, 2" in t for t in tables.values())
    assert all(" ± " in r for n in ("table1", "table3", "table6") for r in rows[n] if "reference" not in r)
    assert "(7.7)" in tables["table4"] and "(58.3)" in tables["table6"] and "(71.3)" in tables["table7"]
    results = (out / "results.md").read_text(encoding="utf-8")
    assert "| `quality_diversity.py` |" in results
    assert "0 runs trained (0 s of training), 36 reused" in results  # Table 8 scores the runs of Tables 6–7
    with open(out / "results.csv", encoding="utf-8") as f:
        curve = list(csv.DictReader(f))
    start = {
        (r["strategy"], r["parts"], r["seed"]): float(r["fid_avg"]) for r in curve if float(r["kimg"]) == 0
    }
    for seed in "012":  # inflating D does not change G's samples; No Inflate starts elsewhere
        assert (
            start[("inflate-1", "G", seed)] == start[("inflate-1", "GD", seed)] != start[("none", "GD", seed)]
        )
    assert {float(r["kimg"]) for r in curve} == {0.0, 0.008, 0.016}
    with open(out / "table4.csv", encoding="utf-8") as f:
        assert all(float(r["fid_2d"]) > 0 for r in csv.DictReader(f))
