"""Embedded phantoms: offline, seeded, anatomically varied, through the real prepare path."""

from __future__ import annotations

import numpy as np

from medgan3d.data import (
    brain_phantom,
    heart_phantom,
    load_manifest,
    make_brain_phantoms,
    make_heart_phantoms,
    open_volumes,
    read_volume,
)


def test_heart_phantom_is_ctca_like_in_hu():
    data, affine = heart_phantom(np.random.default_rng(0), inplane=64)
    assert data.dtype == np.int16 and data.shape[:2] == (64, 64) and 24 <= data.shape[2] <= 72
    assert affine[0, 0] < 0 and affine[1, 1] < 0  # stored LPS like scanner exports
    frac = lambda lo, hi: float(((data >= lo) & (data < hi)).mean())  # noqa: E731
    assert frac(-1100, -900) > 0.02  # air around the body
    assert frac(-950, -700) > 0.05  # lungs
    assert frac(200, 500) > 0.01  # contrast-filled chambers and aorta
    assert frac(550, 3100) > 0.001  # spine cortex (and calcium)


def test_brain_phantom_subjects_differ_but_are_seeded():
    a, _ = brain_phantom(np.random.default_rng([0, 1]), grid=24)
    b, _ = brain_phantom(np.random.default_rng([0, 2]), grid=24)
    a2, _ = brain_phantom(np.random.default_rng([0, 1]), grid=24)
    np.testing.assert_array_equal(a, a2)
    na, nb = a / np.percentile(a, 99), b / np.percentile(b, 99)
    assert np.abs(na - nb).mean() > 0.02


def test_make_heart_phantoms_goes_through_coca(tmp_path):
    report = make_heart_phantoms(
        4, tmp_path / "h", seed=1, shape=(32, 32, 32), inplane=64, raw_dir=tmp_path / "raw"
    )
    assert report["count"] == 4 and report["skipped"] == []
    m = load_manifest(tmp_path / "h")
    assert m["preset"]["name"] == "coca" and m["preset"]["window"] == [-250.0, 650.0]
    assert {it["orientation_in"] for it in m["items"]} == {"LPS"}
    raw, _ = read_volume(tmp_path / "raw" / "heart_00002.nii.gz")
    item = m["items"][2]
    assert item["original_shape"] == list(raw.shape)
    arr = open_volumes(tmp_path / "h")
    assert arr.shape == (4, 1, 32, 32, 32)
    # Padded slices are exactly the normalised background.
    a, b = item["valid_slices"]
    assert (arr[2, 0, :a] == -1).all() and (arr[2, 0, b:] == -1).all()


def test_make_brain_phantoms_adni_and_subject_independent_of_n(tmp_path):
    make_brain_phantoms(3, tmp_path / "b3", seed=5, shape=(16, 16, 16))
    make_brain_phantoms(2, tmp_path / "b2", seed=5, shape=(16, 16, 16), val_fraction=0.0)
    m = load_manifest(tmp_path / "b3")
    assert (
        m["preset"]["name"] == "adni"
        and m["shape"] == [1, 16, 16, 16]
        and m["intensity"]["kind"] == "percentile"
    )
    a3, a2 = open_volumes(tmp_path / "b3"), open_volumes(tmp_path / "b2")
    np.testing.assert_array_equal(a3[:2], a2)
    assert np.abs(a3[0].astype(np.float32) - a3[1]).mean() > 0.02


def test_labelled_phantom_classes_differ_where_they_should() -> None:
    """Brain class 1 has CSF-dark enlarged ventricles; heart class 1 a smaller contrast-filled LV (thicker wall).
    Class 0 (and no label) is the unlabelled phantom's subject, bit for bit."""
    from medgan3d.data.phantoms import brain_phantom, heart_phantom, ventricle_mask

    rng = lambda: np.random.default_rng([0, 5])  # noqa: E731
    plain, _ = brain_phantom(rng(), 24)
    np.testing.assert_array_equal(brain_phantom(rng(), 24, 0)[0], plain)
    big, _ = brain_phantom(rng(), 24, 1)
    centre = ventricle_mask(plain.shape)
    shrunk = centre & np.roll(centre, 2, 0) & np.roll(centre, -2, 0)  # the core, clear of the deformation
    assert big[shrunk].mean() < 0.5 * plain[shrunk].mean()
    assert np.abs(big[~centre] - plain[~centre]).mean() < 0.05 * np.abs(plain).mean()
    h0, _ = heart_phantom(np.random.default_rng([0, 3]), 48)
    np.testing.assert_array_equal(heart_phantom(np.random.default_rng([0, 3]), 48, label=0)[0], h0)
    h1, _ = heart_phantom(np.random.default_rng([0, 3]), 48, label=1)
    assert h1.shape == h0.shape
    assert (h1 > 200).sum() < (h0 > 200).sum() and (h1 > 200).sum() > 0.3 * (h0 > 200).sum()  # a smaller pool
