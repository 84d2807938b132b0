"""report.html and the CLI: what was scored (checkpoint, kimg, version), every metric explained, the
intervals named, warnings for too few samples, provenance as a table, figures with the dataset's spacing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medgan3d import __version__, viz
from medgan3d.cli.main import app
from medgan3d.config import load_preset
from medgan3d.data import load_manifest
from medgan3d.metrics import evaluate_volumes_with_artifacts
from medgan3d.metrics.report import EXPLAIN, write_report
from medgan3d.training.checkpoint import save_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def run(brain_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    G = load_preset("tiny").model.build_generator()
    run = tmp_path_factory.mktemp("runs") / "00000-tiny"
    save_checkpoint(run, 12000, {"G": G, "G_ema": G}, {}, {"config": {"model": {"family": "stylegan2"}}}, {})
    shutil.copy(brain_root / "dataset.json", run / "dataset.json")
    return run


def test_report_names_the_checkpoint_explains_metrics_and_warns(brain_root, run, tmp_path) -> None:
    out = tmp_path / "eval"
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(run),
            "--data",
            str(brain_root),
            "-n",
            "12",
            "-o",
            str(out),
            "--cache",
            str(tmp_path),
            "--bootstrap",
            "20",
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"scored ckpt-000012000 (kimg 12) of {run}" in res.output
    assert re.search(r"fid_avg: [0-9.]+  95% half-sampling interval \[", res.output)
    assert (
        "warning: too few samples: fid_ax, fid_sag, fid_cor, fid_avg, fid_3d: 12 generated and 24 real"
        in res.output
    )
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["warnings"] and metrics["provenance"]["medgan3d_version"] == __version__
    assert metrics["provenance"]["source"]["kimg"] == 12.0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"medgan3d {__version__}" in page and "checkpoint ckpt-000012000 (kimg 12) of run" in page
    assert "<div class='warn'><b>Too few samples:</b>" in page and "<pre>" not in page
    for key in ("fid_ax", "fid_avg", "fid_3d", "kid", "mmd", "ms_ssim", "psnr", "ms_ssim_real"):
        assert EXPLAIN[key].split(";")[0].replace("'", "&#x27;") in page, key
    assert "95 % interval" in page and "half-sampling</small>" in page and "Politis &amp; Romano 1994" in page
    assert (
        "<th>medgan3d_version</th><td>" + __version__ in page
        and "<code>2d.weights</code>: random, seed 0" in page
    )


def test_report_of_files_reads_their_sidecars(brain_root, run, tmp_path) -> None:
    gen = tmp_path / "gen"
    assert runner.invoke(app, ["generate", str(run), "-n", "4", "-o", str(gen), "--raw"]).exit_code == 0
    out = tmp_path / "eval"
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--fake",
            str(gen),
            "--data",
            str(brain_root),
            "-o",
            str(out),
            "--metrics",
            "psnr",
            "--cache",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"files from ckpt-000012000 (kimg 12) of {run}" in res.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Their sidecars say: ckpt-000012000 (kimg 12)" in page


def test_report_grids_use_the_dataset_spacing_units_and_labels(
    brain_root, heldout, tmp_path, monkeypatch
) -> None:
    figures = []
    save = viz._save_png
    monkeypatch.setattr(viz, "_save_png", lambda fig, *a, **k: (figures.append(fig), save(fig, *a, **k))[1])
    result, art = evaluate_volumes_with_artifacts(
        heldout[:4], brain_root, metrics=("psnr",), cache=tmp_path, bootstrap=0
    )
    assert result["provenance"]["spacing"] == load_manifest(brain_root)["spacing"]
    result["provenance"]["spacing"] = [3.0, 1.0, 0.5]  # anisotropic, to see it drawn
    write_report(result, art, tmp_path / "r", grid_rows=2)
    real, fake = figures
    for fig, label in ((real, "real"), (fake, "generated")):
        texts = viz.texts_of(fig)
        assert {
            f"{label} 0",
            f"{label} 1",
            f"{label} volumes: centre slices",
            "L",
            "R",
            "A",
            "P",
            "S",
            "I",
        } <= set(texts)
        assert any(t.startswith("a.u.\nper-scan percentile window") for t in texts)
        assert [ax.get_aspect() for ax in fig.axes[:3]] == pytest.approx([2.0, 6.0, 3.0])
    assert np.isfinite(result["psnr"])
