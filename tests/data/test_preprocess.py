"""Presets against independent computations (Liu et al., arXiv 2208.03934 §4.2.1, Sun et al., IEEE JBHI 2022)."""

from __future__ import annotations

import numpy as np
import pytest

from medgan3d.data import VolumeMeta, VolumeReadError, get_preset, normalize, preprocess
from medgan3d.data.preprocess import PRESETS, PreprocessConfig


def _meta(spacing=(3.0, 0.5, 0.5)) -> VolumeMeta:
    return VolumeMeta(spacing, np.diag([spacing[2], spacing[1], spacing[0], 1.0]))


def test_coca_preset_is_the_paper():
    cfg = PRESETS["coca"]
    assert cfg.window == (-250.0, 650.0) and cfg.shape == (32, 64, 64)
    assert (cfg.inplane, cfg.depth, cfg.crop) == ("resize", "crop_pad", "center")
    assert PRESETS["hagan-ct"].window == (-1024.0, 600.0) and PRESETS["hagan-ct"].shape == (128,) * 3
    assert PRESETS["adni"].shape == (64,) * 3 and PRESETS["adni"].intensity == "percentile"


def test_coca_normalisation_of_known_hu():
    hu = np.array([-3000, -1000, -250, 200, 425, 650, 651, 3000], dtype=np.float32)
    expected = np.array([-1, -1, -1, 0, 0.5, 1, 1, 1], dtype=np.float32)  # (HU + 250) / 900 * 2 - 1
    np.testing.assert_allclose(normalize(hu, -250, 650), expected, atol=1e-6)
    vol = np.broadcast_to(np.resize(hu, 64)[None, None, :], (32, 64, 64)).copy()
    out, info = preprocess(vol, _meta(), PRESETS["coca"])
    np.testing.assert_allclose(out[5, 7], np.resize(expected, 64), atol=1e-6)
    assert info["intensity_range"] == [-250.0, 650.0]


def test_coca_inplane_is_bilinear_2x_block_mean():
    """Bilinear halving with align_corners=False samples block centres: each output is a 2×2 mean."""
    rng = np.random.default_rng(0)
    hu = rng.uniform(-250, 650, (32, 128, 128)).astype(np.float32)
    out, info = preprocess(hu, _meta(), PRESETS["coca"])
    ref = normalize(hu, -250, 650).reshape(32, 64, 2, 64, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert info["spacing"] == pytest.approx([3.0, 1.0, 1.0])


def test_coca_depth_centre_window_and_padding():
    vol = np.arange(40, dtype=np.float32)[:, None, None] * 10 - 200 + np.zeros((40, 64, 64), np.float32)
    out, info = preprocess(vol, _meta(), PRESETS["coca"])
    assert info["depth_offset"] == 4 and info["valid_slices"] == [0, 32]
    np.testing.assert_allclose(out[:, 0, 0], normalize(vol[4:36, 0, 0], -250, 650), atol=1e-6)
    short, info = preprocess(vol[:20], _meta(), PRESETS["coca"])
    assert info["depth_offset"] == -6 and info["valid_slices"] == [6, 26]
    assert (short[:6] == -1).all() and (short[26:] == -1).all()
    np.testing.assert_allclose(short[6:26, 0, 0], normalize(vol[:20, 0, 0], -250, 650), atol=1e-6)


def test_random_depth_window_is_seeded_and_recorded():
    vol = np.arange(90, dtype=np.float32)[:, None, None] * 10 - 250 + np.zeros((90, 64, 64), np.float32)
    cfg = get_preset("coca", crop="random", seed=3)
    starts = {preprocess(vol, _meta(), cfg, f"scan{i}")[1]["depth_offset"] for i in range(8)}
    assert len(starts) > 1 and all(0 <= s <= 58 for s in starts)
    out, info = preprocess(vol, _meta(), cfg, "scan0")
    again, info2 = preprocess(vol, _meta(), cfg, "scan0")
    assert info == info2
    np.testing.assert_array_equal(out, again)
    s = info["depth_offset"]
    np.testing.assert_allclose(out[:, 3, 3], normalize(vol[s : s + 32, 3, 3], -250, 650), atol=1e-6)


def test_output_affine_tracks_the_grid():
    """The centre of output voxel (0,0,0) lies where the input grid says after resize + crop."""
    meta = VolumeMeta(
        (2.0, 0.5, 0.5), np.array([[0.5, 0, 0, -30], [0, 0.5, 0, -40], [0, 0, 2.0, 7], [0, 0, 0, 1]])
    )
    vol = np.random.default_rng(1).uniform(-300, 700, (40, 128, 128)).astype(np.float32)
    _, info = preprocess(vol, meta, PRESETS["coca"])
    aff = np.asarray(info["affine"])
    # In-plane: output pixel 0 covers input pixels 0-1, centre at input index 0.5; depth: slice 4.
    np.testing.assert_allclose(aff @ [0, 0, 0, 1], meta.affine @ [0.5, 0.5, 4, 1], atol=1e-6)
    np.testing.assert_allclose(np.diag(aff)[:3], [1.0, 1.0, 2.0])


def test_adni_percentile_normalisation_and_resize():
    rng = np.random.default_rng(2)
    vol = np.zeros((80, 90, 70), np.float32)
    vol[10:70, 10:80, 10:60] = rng.uniform(100, 1100, (60, 70, 50))
    out, info = preprocess(vol, _meta((1.0, 1.0, 1.0)), get_preset("adni", shape=(32, 32, 32)))
    fg = vol[vol > 0]
    lo, hi = np.percentile(fg, [0.5, 99.5])
    assert info["intensity_range"] == pytest.approx([lo, hi])
    assert out.shape == (32, 32, 32) and out.min() == -1.0 and out.max() <= 1.0
    assert out[0, 0, 0] == -1.0 and abs(float(out[16, 16, 16])) < 1.0


def test_generic_resamples_to_spacing_then_crops():
    vol = np.random.default_rng(3).uniform(0, 100, (20, 40, 40)).astype(np.float32)
    cfg = get_preset("generic", spacing=(2.0, 2.0, 2.0), shape=(16, 16, 16), window=(0.0, 100.0))
    out, info = preprocess(vol, _meta((4.0, 1.0, 1.0)), cfg)
    assert out.shape == (16, 16, 16)
    assert info["spacing"] == pytest.approx([2.0, 2.0, 2.0])
    assert cfg.unit == "HU" and cfg.intensity == "window"


def test_bad_parameters_and_flat_foreground():
    with pytest.raises(ValueError, match="window"):
        get_preset("coca", window=(650.0, -250.0))
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("nope")
    vol = np.zeros((8, 8, 8), np.float32)
    vol[0, 0, 0] = 1.0
    with pytest.raises(VolumeReadError, match="no intensity spread"):
        preprocess(vol, _meta(), get_preset("adni", shape=(8, 8, 8)), "x.nii")


def test_config_roundtrip():
    cfg = get_preset("coca", crop="random", seed=5, shape=(32, 128, 128))
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
