"""Fixtures of the data tests: a seeded generator and a corpus of valid and bad inputs (builders: scans.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tests.data.scans import save_nifti, smooth_volume, write_dicom_series


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def corpus(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, dict[str, int], dict[str, str]]:
    """A folder mixing valid scans of every format with every kind of bad input.

    Returns (root, valid: {source: number of volumes}, bad: {source: expected reason substring}).
    """
    root = tmp_path / "src"
    root.mkdir()
    valid: dict[str, int] = {}
    bad: dict[str, str] = {}

    save_nifti(root / "good1.nii.gz", smooth_volume(rng))
    save_nifti(root / "good2.nii", smooth_volume(rng, (10, 14, 9)))
    valid.update({"good1.nii.gz": 1, "good2.nii": 1})
    sitk.WriteImage(sitk.GetImageFromArray(smooth_volume(rng)), str(root / "good3.mha"))
    sitk.WriteImage(sitk.GetImageFromArray(smooth_volume(rng)), str(root / "good4.nrrd"))
    valid.update({"good3.mha": 1, "good4.nrrd": 1})
    np.save(root / "good5.npy", smooth_volume(rng, (8, 8, 8)))
    np.savez(
        root / "medmnist.npz",
        train_images=rng.integers(0, 255, (3, 8, 8, 8), dtype=np.uint8),
        train_labels=np.zeros((3, 1)),
    )
    valid.update({"good5.npy": 1, "medmnist.npz": 3})

    full = save_nifti(tmp_path / "full.nii.gz", smooth_volume(rng, (40, 40, 40)))
    blob = full.read_bytes()
    (root / "truncated.nii.gz").write_bytes(blob[: len(blob) // 2])
    bad["truncated.nii.gz"] = "cannot read voxel data"
    (root / "corrupt.nii.gz").write_bytes(gzip.compress(rng.bytes(100)))
    bad["corrupt.nii.gz"] = "not a readable NIfTI"
    (root / "empty.nii").write_bytes(b"")
    bad["empty.nii"] = "empty file"
    (root / "notes.nii").write_text("this is a text file, not an image\n" * 20)
    bad["notes.nii"] = "not a readable NIfTI"
    save_nifti(root / "flat2d.nii.gz", smooth_volume(rng, (16, 16)))
    bad["flat2d.nii.gz"] = "2D image"
    save_nifti(root / "series4d.nii.gz", smooth_volume(rng, (8, 8, 8, 3)))
    bad["series4d.nii.gz"] = "4D image"
    nan = smooth_volume(rng)
    nan[2, 3, 4] = np.nan
    save_nifti(root / "nan.nii.gz", nan)
    bad["nan.nii.gz"] = "1 non-finite"
    inf = smooth_volume(rng)
    inf[0, 0, :2] = np.inf
    save_nifti(root / "inf.nii.gz", inf)
    bad["inf.nii.gz"] = "2 non-finite"
    save_nifti(root / "constant.nii.gz", np.full((8, 8, 8), 7.0, dtype=np.float32))
    bad["constant.nii.gz"] = "constant image"
    (root / "junk.mha").write_text("ObjectType = Image\nNDims = 3\n")
    bad["junk.mha"] = "not a readable image"
    (root / "README.txt").write_text("not an image, ignored\n")

    dcm = lambda: rng.integers(-1000, 1000, (6, 16, 16)).astype(np.int16)  # noqa: E731
    write_dicom_series(root / "dicom_ok", dcm(), "1.2.3.4.100")
    valid["dicom_ok#1.2.3.4.100"] = 1
    write_dicom_series(root / "dicom_two", dcm(), "1.2.3.4.201", prefix="a")
    write_dicom_series(root / "dicom_two", dcm()[:5], "1.2.3.4.202", spacing=(3.0, 0.5, 0.5), prefix="b")
    valid.update({"dicom_two#1.2.3.4.201": 1, "dicom_two#1.2.3.4.202": 1})
    write_dicom_series(root / "dicom_missing", dcm()[:5], "1.2.3.4.300", z_positions=[0, 2, 4, 8, 10])
    bad["dicom_missing#1.2.3.4.300"] = "missing slices"
    write_dicom_series(root / "dicom_dup", dcm()[:5], "1.2.3.4.400", z_positions=[0, 2, 4, 4, 6])
    bad["dicom_dup#1.2.3.4.400"] = "duplicate slice"
    mixed = root / "dicom_mixed"
    write_dicom_series(mixed, dcm()[:3], "1.2.3.4.500")
    big = rng.integers(-1000, 1000, (2, 20, 20)).astype(np.int16)
    write_dicom_series(mixed, big, "1.2.3.4.500", z_positions=[6, 8], prefix="z")
    bad["dicom_mixed#1.2.3.4.500"] = "mixed slice sizes"
    (root / "dicom_ok" / "broken.dcm").write_bytes(b"\x00" * 64)
    bad["dicom_ok/broken.dcm"] = "not a readable DICOM"
    return root, valid, bad
