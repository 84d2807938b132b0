"""Builders for test scans: NIfTI with chosen affines, ITK files and DICOM series (the fixtures are in conftest.py)."""

from __future__ import annotations

import locale
import os
import signal
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write ``data`` as stored on disk (file axes), with ``affine`` (default identity)."""
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), str(path))
    return path


def smooth_volume(rng: np.random.Generator, shape=(12, 16, 16), lo=-800.0, hi=800.0) -> np.ndarray:
    """A non-constant float volume with values in [lo, hi]."""
    return rng.uniform(lo, hi, shape).astype(np.float32)


def write_dicom_series(
    folder: Path,
    volume: np.ndarray,
    series_uid: str,
    spacing=(2.0, 0.7, 0.7),
    z_positions=None,
    prefix: str = "slice",
) -> list[Path]:
    """Write ``volume`` ``[Z, Y, X]`` int16 as one DICOM file per slice with SimpleITK (LPS, axial)."""
    folder.mkdir(parents=True, exist_ok=True)
    z_positions = [i * spacing[0] for i in range(len(volume))] if z_positions is None else z_positions
    saved_locale = locale.setlocale(locale.LC_ALL)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for i, (plane, z) in enumerate(zip(volume, z_positions, strict=True)):
        image = sitk.GetImageFromArray(np.asarray(plane, dtype=np.int16))
        image.SetSpacing((spacing[2], spacing[1]))
        tags = {
            "0008|0016": CT_SOP_CLASS,
            "0008|0018": f"{series_uid}.{i + 1}",
            "0008|0060": "CT",
            "0010|0020": "TEST",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0013": str(i + 1),
            "0020|0032": f"-10\\-20\\{z}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": f"{spacing[1]}\\{spacing[2]}",
            "0018|0050": str(spacing[0]),
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        path = folder / f"{prefix}{i:03d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    locale.setlocale(locale.LC_ALL, saved_locale)  # GDCM's DICOM writer switches the C locale to ASCII
    return paths


def sigkill_if_named_sigkill(args):
    """A ``process_source`` stand-in that SIGKILLs its own (worker) process on a source named ``*sigkill*``.

    Module level in an importable module, so a spawned worker can find it by name (spawn does not see monkeypatches).
    """
    from medgan3d.data.prepare import process_source

    if "sigkill" in args[0].name:
        os.kill(os.getpid(), signal.SIGKILL)
    return process_source(args)
