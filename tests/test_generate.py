"""`medgan3d generate`'s outputs: clipped to the trained window, marked synthetic in the NIfTI header
and a JSON sidecar, with the checkpoint's kimg; the preview's labels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medgan3d import __version__
from medgan3d.cli.main import app
from medgan3d.config import load_preset
from medgan3d.data import make_heart_phantoms
from medgan3d.generate import SyntheticInfo, descrip, sidecar_path, write_synthetic
from medgan3d.training.checkpoint import save_checkpoint
from medgan3d.viz import IntensityWindow

runner = CliRunner()


@pytest.fixture(scope="module")
def heart16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cardiac CT phantoms prepared with the coca preset (HU window [-250, 650]) at 16³."""
    out = tmp_path_factory.mktemp("data") / "heart16"
    make_heart_phantoms(3, out, seed=0, shape=(16, 16, 16), inplane=32)
    return out


@pytest.fixture(scope="module")
def run(heart16: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with one checkpoint at 2 kimg whose tiny G_ema overshoots [-1, 1] (toRGB weights × 50)."""
    torch.manual_seed(0)
    G = load_preset("tiny").model.build_generator()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if "torgb" in name and name.endswith("weight"):
                p.mul_(50.0)
    run = tmp_path_factory.mktemp("runs") / "00000-tiny"
    state = {"config": {"preset": "tiny", "model": {"family": "stylegan2"}}}
    save_checkpoint(run, 2000, {"G": G, "G_ema": G}, {}, state, {})
    shutil.copy(heart16 / "dataset.json", run / "dataset.json")
    return run


def _generate(run: Path, out: Path, *flags: str) -> np.ndarray:
    res = runner.invoke(
        app, ["generate", str(run), "--seeds", "0-1", "--trunc", "0.9", "-o", str(out), *flags]
    )
    assert res.exit_code == 0, res.output
    return np.asarray(nib.load(out / "seed0001.nii.gz").dataobj)


def test_values_are_clipped_to_the_trained_window_unless_no_clip(run: Path, tmp_path: Path) -> None:
    clipped = _generate(run, tmp_path / "clip")
    raw = _generate(run, tmp_path / "raw", "--no-clip")
    assert clipped.min() >= -250.0 - 1e-3 and clipped.max() <= 650.0 + 1e-3
    assert raw.min() < -250.0 - 1.0 or raw.max() > 650.0 + 1.0  # the generator overshoots: clipping did work
    np.testing.assert_allclose(clipped, np.clip(raw, -250.0, 650.0), atol=1e-3)
    model = _generate(run, tmp_path / "model", "--raw")
    assert model.min() >= -1.0 and model.max() <= 1.0
    assert json.loads((tmp_path / "raw" / "seed0001.json").read_text())["clipped_to_window"] is False


def test_header_and_sidecar_say_synthetic_with_run_kimg_seed_psi_window(run: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["generate", str(run), "--seeds", "3", "--trunc", "0.7", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "HU, window -250 to 650, clipped to the window" in res.output
    header = nib.load(tmp_path / "seed0003.nii.gz").header
    text = header["descrip"].tobytes().rstrip(b"\0").decode("ascii")
    assert text == f"synthetic, medgan3d {__version__}, kimg 2, psi 0.7, seed 3, HU -250 to 650"
    assert (float(header["cal_min"]), float(header["cal_max"])) == (-250.0, 650.0)
    side = json.loads((tmp_path / "seed0003.json").read_text(encoding="utf-8"))
    assert side["synthetic"] is True and side["image"] == "seed0003.nii.gz"
    assert side["run"] == str(run) and side["checkpoint"] == "ckpt-000002000" and side["kimg"] == 2.0
    assert side["seed"] == 3 and side["psi"] == 0.7 and side["family"] == "stylegan2"
    assert side["units"] == "HU" and side["window"] == [-250.0, 650.0] and side["window_kind"] == "window"
    assert side["medgan3d_version"] == __version__ and side["GeneratedBy"][0]["Name"] == "medgan3d"
    assert side["clipped_to_window"] is True and side["preset"] == "tiny" and "label" not in side
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preview.png", "seed0003.json", "seed0003.nii.gz"]


def test_descrip_fits_80_bytes_and_keeps_synthetic_version_and_units(tmp_path: Path) -> None:
    window = IntensityWindow(4.2059852886, 850.4019036865, "a.u.", "percentile")
    info = SyntheticInfo("r" * 300, "stylegan2", window, True, kimg=123456.789, seed=123456789, psi=0.123456)
    text = descrip(info)
    assert len(text.encode()) <= 80 and text.startswith(f"synthetic, medgan3d {__version__}")
    assert text.endswith("a.u. pct 4.206 to 850.4")
    path, side = write_synthetic(tmp_path / "x.nii.gz", np.zeros((4, 5, 6)), info, spacing=(2.0, 1.0, 1.0))
    assert side == sidecar_path(path) == tmp_path / "x.json"
    img = nib.load(path)
    assert img.header["descrip"].tobytes().rstrip(b"\0").decode() == text
    np.testing.assert_allclose(np.asarray(img.dataobj), (850.4019036865 + 4.2059852886) / 2, rtol=1e-6)
    assert json.loads(side.read_text())["spacing_mm"] == [2.0, 1.0, 1.0]


def test_preview_has_titles_orientation_letters_and_window(run: Path, tmp_path: Path, monkeypatch) -> None:
    from medgan3d import viz

    drawn: list[list[str]] = []
    save = viz._save_png
    monkeypatch.setattr(
        viz, "_save_png", lambda fig, *a, **k: (drawn.append(viz.texts_of(fig)), save(fig, *a, **k))[1]
    )
    _generate(run, tmp_path)
    (texts,) = drawn
    assert "synthetic, stylegan2, kimg 2, psi 0.9" in texts and {"seed 0", "seed 1"} <= set(texts)
    assert {"L", "R", "A", "P", "S", "I"} <= set(texts)
    assert any("HU" in t and "window -250 to 650" in t for t in texts)


def test_mix_and_interpolate_mark_their_volumes_synthetic(run: Path, tmp_path: Path) -> None:
    from medgan3d.interpolate import interpolate
    from medgan3d.mix import mix

    mix(run, "0", "1", "coarse", tmp_path / "M", psi=0.8)
    interpolate(run, tmp_path / "I", seeds="0,1", steps=3)
    for path, tool in (
        (tmp_path / "M" / "mix-r00-c00.nii.gz", "mix"),
        (tmp_path / "I" / "frame001.nii.gz", "interpolate"),
    ):
        side = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        assert (
            side["synthetic"] is True
            and side["tool"] == tool
            and side["kimg"] == 2.0
            and side["units"] == "HU"
        )
        assert side["clipped_to_window"] is True and side["label"]  # clipped as generate clips, by default
        text = nib.load(path).header["descrip"].tobytes().decode("ascii")
        assert text.startswith(f"synthetic, medgan3d {__version__}, kimg 2")
    assert json.loads((tmp_path / "I" / "frame001.json").read_text())["label"] == "segment 0, t 0.5"


def test_mix_and_interpolate_clip_to_the_trained_window_unless_no_clip(run: Path, tmp_path: Path) -> None:
    from medgan3d.interpolate import interpolate
    from medgan3d.mix import mix

    for clip, tag in ((True, "c"), (False, "r")):
        mix(run, "0", "1", "coarse", tmp_path / f"M{tag}", psi=0.8, clip=clip)
        interpolate(run, tmp_path / f"I{tag}", seeds="0,1", steps=3, clip=clip)
    for name in ("M{}/mix-r00-c00.nii.gz", "M{}/row00-seed0000.nii.gz", "I{}/frame001.nii.gz"):
        clipped = np.asarray(nib.load(tmp_path / name.format("c")).dataobj)
        raw = np.asarray(nib.load(tmp_path / name.format("r")).dataobj)
        assert raw.min() < -250.0 or raw.max() > 650.0  # the overshooting generator leaves the window
        assert clipped.min() >= -250.0 - 1e-3 and clipped.max() <= 650.0 + 1e-3
        np.testing.assert_allclose(clipped, np.clip(raw, -250.0, 650.0), atol=1e-3)
        side = json.loads(sidecar_path(tmp_path / name.format("r")).read_text(encoding="utf-8"))
        assert side["clipped_to_window"] is False
    assert json.loads((tmp_path / "Mc" / "mix.json").read_text())["clipped_to_window"] is True
    assert json.loads((tmp_path / "Ir" / "interpolation.json").read_text())["clipped_to_window"] is False
    res = runner.invoke(
        app, ["mix", str(run), "--rows", "0", "--cols", "1", "--no-clip", "-o", str(tmp_path / "X")]
    )
    assert res.exit_code == 0, res.output
    assert (
        json.loads(sidecar_path(tmp_path / "X" / "mix-r00-c00.nii.gz").read_text())["clipped_to_window"]
        is False
    )


def test_projection_reconstructions_are_marked_synthetic(run: Path, heart16: Path, tmp_path: Path) -> None:
    from medgan3d.project import ProjectorConfig, project

    cfg = ProjectorConfig(steps=2, w_avg_samples=64, snapshots=0)
    (result,) = project(run, tmp_path / "P", data=heart16, limit=1, config=cfg)
    folder = Path(result["folder"])
    manifest = json.loads((heart16 / "dataset.json").read_text(encoding="utf-8"))
    for name, noise in (
        ("reconstruction", "the projection's noise"),
        ("reconstruction_noise_off", "noise off"),
    ):
        path = folder / f"{name}.nii.gz"
        side = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        assert side["synthetic"] is True and side["tool"] == "project" and side["kimg"] == 2.0
        assert side["checkpoint"] == "ckpt-000002000" and side["family"] == "stylegan2"
        assert (
            side["units"] == "HU" and side["window"] == [-250.0, 650.0] and side["clipped_to_window"] is False
        )
        assert side["projected_scan"] == result["scan"] and side["label"].endswith(noise)
        assert side["spacing_mm"] == pytest.approx(manifest["spacing"])
        text = nib.load(path).header["descrip"].tobytes().decode("ascii")
        assert text.startswith(f"synthetic, medgan3d {__version__}, kimg 2") and "HU -250 to 650" in text
    target = nib.load(folder / "target.nii.gz")  # the real scan stays unmarked
    assert not sidecar_path(folder / "target.nii.gz").exists()
    assert not target.header["descrip"].tobytes().decode("ascii", "replace").startswith("synthetic")
