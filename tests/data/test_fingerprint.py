"""prepare's dataset fingerprint (report.json), its outliers, and preview.png (three planes, window shown)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from medgan3d.cli.main import app
from medgan3d.data import load_manifest, make_heart_phantoms, open_volumes
from medgan3d.data.fingerprint import neighbour_correlation, preview_figure
from medgan3d.viz import texts_of

runner = CliRunner()


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six raw CT scans (the heart phantom, in HU) plus three that stand out: pure noise, a voxel three times
    as large, and a scan stored with the unsigned offset of +1024 that some exports leave in."""
    root = tmp_path_factory.mktemp("fingerprint")
    make_heart_phantoms(6, root / "unused", shape=(16, 16, 16), inplane=32, raw_dir=root / "scans")
    folder = root / "scans"
    ref = nib.load(folder / "heart_00000.nii.gz")
    data = np.asarray(ref.dataobj, dtype=np.float32)
    noise = np.random.default_rng(0).normal(0, 300, data.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, ref.affine), folder / "noise.nii.gz")
    coarse = ref.affine.copy()
    coarse[:3, :3] *= 3
    nib.save(nib.Nifti1Image(data, coarse), folder / "coarse.nii.gz")
    nib.save(nib.Nifti1Image(data + 1024, ref.affine), folder / "offset.nii.gz")
    return folder


@pytest.fixture(scope="module")
def prepared(scans: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("prepared") / "data"
    res = runner.invoke(app, ["prepare", str(scans), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_neighbour_correlation_tells_noise_from_anatomy() -> None:
    rng = np.random.default_rng(1)
    assert abs(neighbour_correlation(rng.normal(size=(20, 20, 20)))) < 0.1
    z, y, x = np.mgrid[:20, :20, :20]
    assert neighbour_correlation(np.sin(z / 3.0) + np.cos(y / 4.0) + x / 20.0) > 0.9


def test_outliers_are_flagged_with_their_reason(prepared: tuple[Path, str]) -> None:
    out, _ = prepared
    fp = json.loads((out / "report.json").read_text(encoding="utf-8"))["fingerprint"]
    assert fp["scans"] == 9 and len(fp["per_scan"]) == 9
    reasons = {o["source"].split("/")[-1]: " ".join(o["reasons"]) for o in fp["outliers"]}
    assert set(reasons) == {"noise.nii.gz", "coarse.nii.gz", "offset.nii.gz"}  # none of the six phantoms
    assert "noise" in reasons["noise.nii.gz"]
    assert "spacing" in reasons["coarse.nii.gz"] and "intensities" not in reasons["coarse.nii.gz"]
    assert "intensities" in reasons["offset.nii.gz"] and "spacing" not in reasons["offset.nii.gz"]
    spacing = fp["spacing_mm"]
    assert spacing["min"][0] <= spacing["median"][0] <= spacing["max"][0]
    assert fp["intensity_p1_p50_p99"]["min"][0] >= -1024  # HU, the raw units


def test_the_summary_names_the_outliers(prepared: tuple[Path, str]) -> None:
    out, output = prepared
    lines = [line for line in output.splitlines() if "outlier" in line]
    assert len(lines) == 3 and any("noise.nii.gz" in line and "looks like noise" in line for line in lines)
    assert "fingerprint of 9 scans" in output and str(out / "preview.png") in output


def test_preview_shows_volumes_planes_window_and_orientation(prepared: tuple[Path, str]) -> None:
    out, _ = prepared
    assert (out / "preview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = load_manifest(out)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    items, flagged = manifest["items"], report["fingerprint"]["outliers"]
    texts = texts_of(preview_figure(open_volumes(out), items, manifest, flagged))
    assert {"axial", "coronal", "sagittal", "L", "R", "A", "P", "S", "I"} <= set(texts)
    assert any("window -250 to 650" in t and "HU" in t for t in texts)  # the colour bar names the window
    names = [t for t in texts if t.endswith(".nii.gz") or "(outlier)" in t]
    assert any("heart_00000.nii.gz" in t for t in names)
    odd = {o["source"] for o in flagged}
    first = sum(it["source"] in odd for it in items[:4])  # the first four volumes, then two more outliers
    assert len(names) == 6 and sum("(outlier)" in t for t in names) == first + min(2, len(odd) - first)


def test_a_dataset_too_small_to_compare_has_no_outliers(scans: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    two.mkdir()
    for name in ("heart_00000.nii.gz", "noise.nii.gz"):
        shutil.copy(scans / name, two / name)
    res = runner.invoke(app, ["prepare", str(two), "-o", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "d" / "report.json").read_text(encoding="utf-8"))
    assert report["fingerprint"]["outliers"] == [] and (tmp_path / "d" / "preview.png").is_file()
