"""Style mixing, latent walks and projected latents; `project`, `mix` and `interpolate` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medgan3d.data import Manifest
from medgan3d.errors import UsageError
from medgan3d.interpolate import walk, walk_volumes
from medgan3d.latents import (
    Latent,
    band_stages,
    load_latent,
    parse_latents,
    parse_styles,
    render,
    seed_latent,
    style_bands,
)
from medgan3d.mix import style_mix
from medgan3d.project import ProjectorConfig, project_volume, save_projection
from tests.models import small_generator


@pytest.fixture(scope="module")
def G() -> torch.nn.Module:
    G = small_generator(noise_strength=0.2)
    G.mapping.w_avg.copy_(torch.randn(G.w_dim))
    return G


# --------------------------------------------------------------------------------------------- style mixing


def test_all_styles_give_the_column_and_none_the_row(G: torch.nn.Module) -> None:
    rows, cols = parse_latents("0,1", G, psi=0.7), parse_latents("10,11,12", G, psi=0.7)
    every = style_mix(G, rows, cols, parse_styles("all", G))
    nothing = style_mix(G, rows, cols, parse_styles("none", G))
    assert parse_styles("", G) == () and parse_styles("all", G) == tuple(range(G.num_ws))
    for i in range(2):
        for j in range(3):
            assert np.array_equal(every.cells[i][j], every.cols[j])
            assert np.array_equal(nothing.cells[i][j], nothing.rows[i])
    some = style_mix(G, rows, cols, parse_styles("fine", G))
    assert not np.array_equal(some.cells[0][0], some.rows[0]) and not np.array_equal(
        some.cells[0][0], some.cols[0]
    )


def test_psi_zero_gives_w_avg_for_every_seed(G: torch.nn.Module) -> None:
    ws = [seed_latent(G, s, psi=0.0).ws for s in (0, 1, 7, 1234)]
    for w in ws:
        assert torch.equal(w, ws[0])
    assert torch.equal(ws[0][0], G.mapping.w_avg)
    assert not torch.equal(seed_latent(G, 0, psi=0.5).ws, seed_latent(G, 1, psi=0.5).ws)


def test_seed_latents_match_generate(G: torch.nn.Module) -> None:
    """mix/interpolate seeds are the seeds of `medgan3d generate` (same z, same constant noise)."""
    from medgan3d.sampling import sample

    np.testing.assert_allclose(
        render(G, seed_latent(G, 3, 0.8).ws), sample(G, [3], psi=0.8)[0, 0].numpy(), rtol=1e-5, atol=1e-6
    )


def test_bands_come_from_the_stage_list(G: torch.nn.Module) -> None:
    assert {k: list(v) for k, v in band_stages(5).items()} == {
        "coarse": [0, 1],
        "middle": [2, 3],
        "fine": [4],
    }
    assert [len(v) for v in band_stages(6).values()] == [2, 2, 2]
    assert [len(v) for v in band_stages(3).values()] == [1, 1, 1]
    # 3 stages of a skip generator: w0 | w1, w2 | w3, w4, w5 (w5 = the last toRGB)
    assert style_bands(G) == {"coarse": (0,), "middle": (1, 2), "fine": (3, 4, 5)}
    assert parse_styles("2-4", G) == (2, 3, 4) and parse_styles("coarse,5", G) == (0, 5)
    for bad, message in (("6", "out of range"), ("4-2", "backwards"), ("big", "not coarse")):
        with pytest.raises(UsageError, match=message):
            parse_styles(bad, G)


# --------------------------------------------------------------------------------------------- walks


def test_walk_ends_on_the_endpoints_and_keeps_other_layers(G: torch.nn.Module) -> None:
    ends = parse_latents("0,7,9", G)
    frames = walk(ends, 4, range(G.num_ws))
    assert len(frames) == 4 + 3 and [f[1] for f in frames[:4]] == [0.0, 1 / 3, 2 / 3, 1.0]
    assert torch.equal(frames[0][2], ends[0].ws) and torch.equal(frames[-1][2], ends[2].ws)
    assert torch.equal(frames[3][2], ends[1].ws)
    fine = parse_styles("fine", G)
    for _, _, ws in walk(ends, 3, fine):
        assert torch.equal(ws[:3], ends[0].ws[:3])  # outside the band: the first endpoint throughout
    vols = walk_volumes(G, ends[:2], 3, range(G.num_ws))
    assert np.array_equal(vols[0], render(G, ends[0].ws)) and np.array_equal(vols[-1], render(G, ends[1].ws))


def test_projected_latents_round_trip(G: torch.nn.Module, tmp_path: Path) -> None:
    target = torch.from_numpy(render(G, seed_latent(G, 4).ws))[None, None]
    proj = project_volume(G, target, ProjectorConfig(steps=5, w_avg_samples=100, snapshots=0))
    (tmp_path / "scan").mkdir()
    path = save_projection(tmp_path / "scan" / "projected.npz", proj)
    lat = load_latent(path, G)
    assert lat.label == "scan" and torch.equal(lat.ws, proj.ws)
    assert lat.noise is not None and all(
        torch.equal(a, b) for a, b in zip(lat.noise, proj.noise, strict=True)
    )
    assert np.array_equal(render(G, lat.ws, lat.noise), render(G, proj.ws, proj.render_noise))
    with np.load(path, allow_pickle=False) as data:
        assert data["ws"].shape == (1, G.num_ws, G.w_dim) and data["w"].shape == (1, G.w_dim)
        assert str(data["space"]) == "w"
    mixed = style_mix(G, [lat], parse_latents("1", G), parse_styles("none", G), noise="latent")
    assert np.array_equal(mixed.cells[0][0], render(G, lat.ws, lat.noise))
    np.savez(tmp_path / "wrong.npz", ws=np.zeros((1, 3, G.w_dim), np.float32))
    with pytest.raises(ValueError, match=r"ws of shape \[3, 16\]"):
        load_latent(tmp_path / "wrong.npz", G)
    assert isinstance(parse_latents([str(path), 2], G)[1], Latent)


# --------------------------------------------------------------------------------------------- CLI


def _cli(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MEDGAN3D_ALLOCATOR="system", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "medgan3d", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(path)
    return np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0), img.affine  # to [D, H, W]


def test_cli_project_mix_interpolate(tmp_path: Path) -> None:
    _cli(
        "prepare", "brain-phantom", "-n", "6", "--shape", "16", "-o", "data", "--raw-dir", "raw", cwd=tmp_path
    )
    _cli("train", "--data", "data", "--config", "tiny", "--kimg", "0.008", "--out", "runs", cwd=tmp_path)
    (run,) = (tmp_path / "runs").iterdir()
    scans = sorted((tmp_path / "raw").glob("*.nii.gz"))[-2:]
    proc = _cli(
        "project",
        str(run),
        *map(str, scans),
        "-o",
        "P",
        "--steps",
        "12",
        "--w-avg-samples",
        "300",
        "--snapshots",
        "2",
        cwd=tmp_path,
    )
    assert "noise off" in proc.stdout
    folder = tmp_path / "P" / scans[0].name.split(".")[0]
    names = {p.name for p in folder.iterdir()}
    assert {
        "projected.npz",
        "reconstruction.nii.gz",
        "reconstruction_noise_off.nii.gz",
        "target.nii.gz",
        "metrics.json",
        "preview.png",
        "steps",
    } <= names
    assert sorted(p.name for p in (folder / "steps").iterdir()) == [
        "step0000.png",
        "step0006.png",
        "step0011.png",
    ]
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["scores"]) == {"reconstruction", "noise_off", "generator_noise"}
    for scores in metrics["scores"].values():
        assert {"mse", "psnr_db", "ssim"} <= set(scores) and np.isfinite(scores["psnr_db"])
    assert metrics["settings"]["noise_reg"] > 0 and metrics["space"] == "w" and len(metrics["history"]) == 12
    rec, rec_affine = _nifti(folder / "reconstruction.nii.gz")
    target, target_affine = _nifti(folder / "target.nii.gz")
    from medgan3d.project import read_scan

    manifest = json.loads((tmp_path / "data" / "dataset.json").read_text(encoding="utf-8"))
    array, info = read_scan(scans[0], Manifest.load(tmp_path / "data"))
    np.testing.assert_allclose(rec_affine, np.asarray(info["affine"]), atol=1e-5)
    np.testing.assert_array_equal(target_affine, rec_affine)
    lo, hi = info["intensity_range"]
    np.testing.assert_allclose(target, (array + 1) * (hi - lo) / 2 + lo, rtol=1e-5, atol=1e-4 * (hi - lo))
    assert rec.dtype == np.float32 and rec.shape == (16, 16, 16)

    _cli(
        "project",
        str(run),
        "--data",
        "data",
        "--split",
        "val",
        "--limit",
        "1",
        "-o",
        "V",
        "--steps",
        "3",
        "--space",
        "w+",
        "--loss",
        "3dstylegan",
        "--w-avg-samples",
        "100",
        "--snapshots",
        "0",
        cwd=tmp_path,
    )
    (item,) = (tmp_path / "V").iterdir()
    settings = json.loads((item / "metrics.json").read_text(encoding="utf-8"))["settings"]
    assert (settings["lr"], settings["noise_reg"], settings["space"]) == (0.3, 0.0, "w+")

    npz = folder / "projected.npz"
    proc = _cli(
        "mix",
        str(run),
        "--rows",
        f"0,{npz}",
        "--cols",
        "10,11",
        "--styles",
        "fine",
        "-o",
        "M",
        "--psi",
        "0.7",
        cwd=tmp_path,
    )
    record = json.loads((tmp_path / "M" / "mix.json").read_text(encoding="utf-8"))
    assert record["layers"] == [3, 4, 5] and record["rows"][1]["label"] == folder.name
    for plane in ("axial", "coronal", "sagittal"):
        assert (tmp_path / "M" / f"grid_{plane}.png").stat().st_size > 0
    cell, cell_affine = _nifti(tmp_path / "M" / "mix-r01-c00.nii.gz")
    np.testing.assert_allclose(cell_affine, np.asarray(manifest["affine"]), atol=1e-6)
    from medgan3d.data import denormalize
    from medgan3d.latents import load_stylegan

    G = load_stylegan(run)
    grid = style_mix(G, parse_latents(f"0,{npz}", G, 0.7), parse_latents("10", G, 0.7), (3, 4, 5))
    clipped = np.clip(grid.cells[1][0], -1.0, 1.0)  # mix clips to the trained window by default
    np.testing.assert_allclose(
        cell, denormalize(clipped, Manifest.load(tmp_path / "data")), rtol=1e-5, atol=1e-4
    )
    assert len(list((tmp_path / "M").glob("mix-r*-c*.nii.gz"))) == 4

    proc = _cli(
        "interpolate",
        str(run),
        "--seeds",
        "0,7",
        "--latents",
        str(npz),
        "--steps",
        "3",
        "--styles",
        "coarse",
        "-o",
        "I",
        cwd=tmp_path,
    )
    assert "5 frames through 3 latents" in proc.stdout
    from PIL import Image

    with Image.open(tmp_path / "I" / "walk.gif") as gif:
        assert gif.n_frames == 5
    assert len(list((tmp_path / "I").glob("frame*.nii.gz"))) == 5

    bad = _cli(
        "mix", str(run), "--rows", "0", "--cols", "1", "--styles", "7-9", "-o", "X", cwd=tmp_path, code=2
    )
    assert "error: styles '7-9': w indices [7, 8, 9] out of range" in bad.stderr
    bad = _cli("project", str(run), "--data", "data", "--features", "-o", "F", cwd=tmp_path, code=2)
    assert "--features is HA-GAN's encoder" in bad.stderr
    bad = _cli("interpolate", str(run), "--seeds", "3", "-o", "Y", cwd=tmp_path, code=2)
    assert "at least two endpoints" in bad.stderr
