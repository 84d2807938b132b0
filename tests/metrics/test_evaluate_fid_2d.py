"""FID of 2D images against the real axial slices (Liu et al., arXiv 2208.03934, Table 4, column FID-2D)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from medgan3d.cli.main import app
from medgan3d.config import MetricsConfig, load_preset
from medgan3d.metrics import evaluate_generator, evaluate_volumes, get_extractor
from medgan3d.metrics.evaluate import real_axial_slices

FAST = {"extractor_2d": "random-2d", "bootstrap": 0, "metrics": ("fid",)}


def _axial(volumes: torch.Tensor) -> torch.Tensor:
    """Every axial slice of ``[N, 1, D, H, W]`` as ``[N·D, 1, H, W]``."""
    return volumes.movedim(2, 1).reshape(-1, 1, *volumes.shape[3:])


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (no code shared with medgan3d.metrics)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_real_slices_are_every_axial_slice_of_the_set(brain_root) -> None:
    real, idx, source = real_axial_slices(brain_root, MetricsConfig())
    volumes = torch.from_numpy(np.load(brain_root / "volumes.npy").astype(np.float32))
    assert source == "all" and real.shape == (24 * 16, 1, 16, 16) and idx == list(range(24 * 16))
    torch.testing.assert_close(real, _axial(volumes))
    sub, sub_idx, _ = real_axial_slices(brain_root, MetricsConfig(num_real=50, seed=3))
    assert len(sub) == 50 and torch.equal(sub, real[sub_idx])


def test_identical_slices_score_zero_and_blurred_ones_worse(brain_root, heldout, tmp_path) -> None:
    real, _, _ = real_axial_slices(brain_root, MetricsConfig())
    same = evaluate_volumes(real, brain_root, cache=tmp_path, **FAST)
    assert abs(same["fid_2d"]) < 1e-6 and "fid_ax" not in same
    clean = evaluate_volumes(_axial(heldout), brain_root, cache=tmp_path, **FAST)["fid_2d"]
    blurred = torch.from_numpy(gaussian_filter(_axial(heldout).numpy(), sigma=(0, 0, 1.2, 1.2))).float()
    bad = evaluate_volumes(blurred, brain_root, cache=tmp_path, **FAST)["fid_2d"]
    assert bad > 1.5 * clean > 0, (bad, clean)


def test_fid_2d_matches_an_independent_computation(brain_root, heldout, tmp_path) -> None:
    fake = _axial(heldout)[::3]
    got = evaluate_volumes(fake, brain_root, cache=tmp_path, **FAST)
    ext = get_extractor("random-2d", seed=0)
    real, _, _ = real_axial_slices(brain_root, MetricsConfig())
    expected = _scipy_fid(ext.features(real), ext.features(fake))
    # 128 fake images in 480 dimensions: sqrtm of the singular covariance product is good to ~1e-5
    assert got["fid_2d"] == pytest.approx(expected, rel=1e-4)
    assert got["details"]["fid_2d"]["real_images"] == len(real)
    assert (
        got["provenance"]["unit"] == "images" and "random" in got["provenance"]["extractors"]["2d"]["weights"]
    )


def test_a_2d_generator_is_scored_against_axial_slices(brain_root, tmp_path) -> None:
    torch.manual_seed(0)
    G = load_preset("tiny-2d").model.build_generator()
    result = evaluate_generator(
        G, brain_root, num_samples=12, cache=tmp_path, extractor_2d="random-2d", metrics=("fid",)
    )
    assert result["fid_2d"] > 0 and result["provenance"]["num_fake"] == 12 and "fid_2d" in result["ci95"]
    with pytest.raises(ValueError, match="need volumes"):
        evaluate_generator(G, brain_root, num_samples=4, cache=tmp_path, metrics=("fid", "psnr"))


def test_cli_evaluates_a_2d_generator(brain_root, tmp_path) -> None:
    gdir = tmp_path / "G2d"
    load_preset("tiny-2d").model.build_generator().save_pretrained(gdir)
    out = tmp_path / "eval"
    args = [
        "evaluate",
        str(gdir),
        "--data",
        str(brain_root),
        "-n",
        "12",
        "-o",
        str(out),
        "--cache",
        str(tmp_path),
        "--extractor-2d",
        "random-2d",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "fid_2d against the real axial slices" in res.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics) >= {"fid_2d", "ci95", "provenance"} and "fid_3d" not in metrics
    assert (out / "generated_slices.png").is_file() and (out / "report.html").is_file()
