"""`medgan3d demo` end to end with minimal budgets: every stage leaves what the next one and the user need."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from medgan3d.cli.main import app


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    args = [
        "demo",
        "--out",
        str(out),
        "--num",
        "10",
        "--kimg-2d",
        "0.064",
        "--kimg-3d",
        "0.032",
        "--num-eval",
        "6",
        "--kimg-hagan",
        "0.008",
        "--proj-steps",
        "20",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    for step in ("prepare brain-phantom", "pretrain", "train", "--init-from", "generate", "evaluate"):
        assert "$ medgan3d" in result.output and step in result.output
    data = out / "data" / "brain-16x16x16"
    assert json.loads((data / "dataset.json").read_text(encoding="utf-8"))["count"] == 10
    run3d = next((out / "runs").glob("*-demo-3d"))
    config = (run3d / "config.yaml").read_text(encoding="utf-8")
    assert "strategy: inflate-1" in config and "parts: GD" in config
    assert "aug: ada" in config and "ada_kimg: 10" in config  # p can move within the demo's few kimg
    run2d = next((out / "runs").glob("*-demo-2d"))
    assert "kimg: 0.064" in (run2d / "config.yaml").read_text(encoding="utf-8")
    volumes = sorted((out / "samples").glob("*.nii.gz"))
    assert len(volumes) == 8
    vol = np.asarray(nib.load(volumes[0]).dataobj)
    assert vol.shape == (16, 16, 16) and np.isfinite(vol).all() and vol.std() > 0
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text(encoding="utf-8"))
    assert {"fid_ax", "fid_sag", "fid_cor", "fid_avg", "mmd", "ms_ssim", "psnr"} <= set(metrics)
    html = (out / "evaluation" / "report.html").read_text(encoding="utf-8")
    for png in re.findall(r'src="([^"]+\.png)"', html):
        assert (out / "evaluation" / png).stat().st_size > 0
    assert str(out / "evaluation" / "report.html") in result.output
    assert "What to expect:" in result.output and "random feature extractor" in result.output
    assert "0.032 kimg is shorter than the demo's 12" in result.output  # the pictures were described at 12
    (projected,) = (out / "projection").iterdir()  # the one held-out (val) volume
    split_val = json.loads((data / "dataset.json").read_text(encoding="utf-8"))["splits"]["val"]
    assert projected.name.startswith(f"{split_val[0]:04d}-")
    scores = json.loads((projected / "metrics.json").read_text(encoding="utf-8"))["scores"]
    assert {"reconstruction", "noise_off"} <= set(scores) and len(
        list((projected / "steps").glob("*.png"))
    ) == 11
    mix = json.loads((out / "mixing" / "mix.json").read_text(encoding="utf-8"))
    assert [c["label"] for c in mix["cols"]] == ["seed0010", "seed0011", projected.name]
    assert len(list((out / "mixing").glob("mix-r*-c*.nii.gz"))) == 9
    assert {f"grid_{p}.png" for p in ("axial", "coronal", "sagittal")} <= {
        p.name for p in (out / "mixing").iterdir()
    }
    assert (out / "interpolation" / "walk.gif").stat().st_size > 0
    hagan = sorted((out / "samples-hagan").glob("*.nii.gz"))
    assert len(hagan) == 4 and nib.load(hagan[0]).shape == (32, 32, 32)
    (projected,) = (out / "projection-hagan").iterdir()
    assert {"reconstruction.nii.gz", "target.nii.gz", "latent.npy", "metrics.json"} <= {
        p.name for p in projected.iterdir()
    }
