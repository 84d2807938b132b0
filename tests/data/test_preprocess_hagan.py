"""HA-GAN's preprocessing presets (Sun et al., IEEE JBHI 2022): blank axial slices trimmed, MRI to [-1, 1]."""

from __future__ import annotations

import numpy as np
import pytest

from medgan3d.data import VolumeMeta, get_preset, preprocess
from medgan3d.data.io import VolumeReadError


def ct_with_air(lead: int, trail: int, body: int = 12, side: int = 16) -> tuple[np.ndarray, VolumeMeta]:
    rng = np.random.default_rng(0)
    vol = np.full((lead + body + trail, side, side), -2000.0, dtype=np.float32)  # air below the window
    vol[lead : lead + body] = rng.uniform(-900, 500, size=(body, side, side))
    vol[lead + body // 2, 0, 0] = -3000.0  # one air voxel inside the body does not make a slice blank
    affine = np.diag([0.7, 0.8, 2.5, 1.0])
    affine[:3, 3] = [-10.0, 20.0, -30.0]
    return vol, VolumeMeta(spacing=(2.5, 0.8, 0.7), affine=affine)


def test_hagan_ct_trims_air_slices_at_both_ends_and_keeps_geometry() -> None:
    vol, meta = ct_with_air(lead=5, trail=3)
    cfg = get_preset("hagan-ct", shape=(12, 16, 16))  # the trimmed size: no resize, geometry checkable
    out, info = preprocess(vol, meta, cfg, "ct.nii.gz")
    assert info["trimmed_slices"] == [5, 3]
    expected = (np.clip(vol[5:17], -1024, 600) + 1024) / 1624 * 2 - 1
    np.testing.assert_allclose(out, expected, atol=1e-5)
    new_affine = np.asarray(info["affine"])
    # voxel (w, h, d) = (0, 0, 0) of the output is voxel (0, 0, 5) of the input
    np.testing.assert_allclose(new_affine @ [0, 0, 0, 1], meta.affine @ [0, 0, 5, 1], atol=1e-6)


def test_hagan_ct_resizes_after_trimming_and_refuses_an_all_air_scan() -> None:
    vol, meta = ct_with_air(lead=6, trail=6)
    out, info = preprocess(vol, meta, get_preset("hagan-ct", shape=(8, 8, 8)), "ct.nii.gz")
    assert out.shape == (8, 8, 8) and info["trimmed_slices"] == [6, 6]
    assert (out > -1).reshape(8, -1).any(axis=1).all()  # no blank slice survives at the ends
    with pytest.raises(VolumeReadError, match="every axial slice is blank"):
        preprocess(np.full((4, 8, 8), -1500.0, np.float32), meta, get_preset("hagan-ct"), "air.nii.gz")


def test_hagan_mri_preset_maps_to_unit_range_at_128() -> None:
    cfg = get_preset("hagan-mri")
    assert cfg.shape == (128, 128, 128) and cfg.intensity == "percentile" and not cfg.trim_blank
    vol = np.random.default_rng(1).gamma(2.0, 100.0, size=(20, 24, 24)).astype(np.float32)
    meta = VolumeMeta(spacing=(1.0, 1.0, 1.0), affine=np.eye(4))
    out, info = preprocess(vol, meta, get_preset("hagan-mri", shape=(20, 24, 24)))
    fg = vol[vol > vol.min()]
    lo, hi = np.percentile(fg, [0.5, 99.5])
    np.testing.assert_allclose(out, (np.clip(vol, lo, hi) - lo) / (hi - lo) * 2 - 1, atol=1e-5)
    assert info["intensity_range"] == pytest.approx([lo, hi])
