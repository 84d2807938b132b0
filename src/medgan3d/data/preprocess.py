"""Paper preprocessing presets.

- ``coca`` — Liu et al., arXiv 2208.03934 §4.2.1 (COCA cardiac CT): HU clipped to [-250, 650] and mapped to [-1, 1]; in-plane
  (sagittal/coronal, i.e. H and W) bilinear resize to 64×64 (or 128×128); the axial count aligned to 32 by
  taking consecutive slices when longer (a centred or a seeded random window) or by padding with the
  normalised background (-1) when shorter.
- ``adni`` — Liu et al., arXiv 2208.03934 §4.2.1 (ADNI brain MRI): robust percentile normalisation to [-1, 1]; all three
  dimensions resized to 64.
- ``hagan-ct`` — Sun et al., IEEE JBHI 2022 (HA-GAN, thorax CT): HU [-1024, 600] to [-1, 1]; axial slices that are all air
  (every voxel at or below -1024 HU) trimmed from both ends, as Sun et al.'s preprocessing removes blank
  slices; then resized to 128³ (``--shape 256`` for 256³).
- ``hagan-mri`` — Sun et al., IEEE JBHI 2022 (HA-GAN, brain MRI, GSP-style): percentile normalisation to [-1, 1]; all three
  dimensions resized to 128³ (or 256³).
- ``brain-t1-2mm`` / ``brain-t1-1mm`` — Hong et al., 3D-StyleGAN (DGM4MICCAI 2021): skull-stripped,
  affinely aligned T1 brain MRI resampled to 2 mm (1 mm) isotropic voxels (Gaussian anti-aliasing) and
  centre-cropped or padded to 80×96×112 (160×192×224), the base 5×6×7 · 2^4 (2^5) its generator makes;
  percentile normalisation to [-1, 1]. A ``--shape`` that is not 5×6×7 · 2^k is refused naming the nearest.
- ``generic`` — resample to a target spacing, crop/pad to a target shape, chosen intensity window.

Every step works on a canonical RAS ``[D, H, W]`` float32 array (see :mod:`medgan3d.data.io`) and updates
the NIfTI affine so that the output voxel grid stays where the scan was.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from medgan3d.data.io import VolumeMeta, VolumeReadError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)  # intensity maps work on both, returning the kind given

Shape3 = tuple[int, int, int]


@dataclass(frozen=True)
class PreprocessConfig:
    """All parameters of a preset; recorded verbatim in the manifest.

    intensity: ``"window"`` clips to ``window`` (e.g. HU) and maps it linearly to [-1, 1];
        ``"percentile"`` does the same with the per-volume ``percentiles`` of the foreground (voxels
        above the minimum), which is robust to MRI's arbitrary scale.
    inplane / depth: ``"resize"`` interpolates to ``shape``; ``"crop_pad"`` keeps the voxel size and takes a
        window of consecutive voxels (``crop``: ``"center"`` or ``"random"`` with ``seed``) or pads with -1.
    spacing: when set, first resample to this (d, h, w) spacing in mm (``generic``).
    antialias: Gaussian pre-filter (sigma = (factor-1)/2) before downsampling. Off in the paper presets,
        whose text specifies plain bilinear interpolation.
    trim_blank: drop the axial slices at either end whose voxels are all at the bottom of the intensity
        range (air outside the body for CT) before resizing; interior slices are never dropped.
    """

    name: str
    shape: Shape3
    intensity: str = "window"
    window: tuple[float, float] | None = (-250.0, 650.0)
    percentiles: tuple[float, float] = (0.5, 99.5)
    unit: str = "HU"
    inplane: str = "resize"
    depth: str = "resize"
    crop: str = "center"
    seed: int = 0
    spacing: tuple[float, float, float] | None = None
    antialias: bool = False
    trim_blank: bool = False

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields
        }
        return cls(**kw)


PRESETS: dict[str, PreprocessConfig] = {
    "coca": PreprocessConfig("coca", (32, 64, 64), "window", (-250.0, 650.0), depth="crop_pad"),
    "adni": PreprocessConfig("adni", (64, 64, 64), "percentile", None, unit="a.u."),
    "hagan-ct": PreprocessConfig("hagan-ct", (128, 128, 128), "window", (-1024.0, 600.0), trim_blank=True),
    "hagan-mri": PreprocessConfig("hagan-mri", (128, 128, 128), "percentile", None, unit="a.u."),
    **{
        f"brain-t1-{mm}mm": PreprocessConfig(
            f"brain-t1-{mm}mm",
            shape,
            "percentile",
            None,
            unit="a.u.",
            inplane="crop_pad",
            depth="crop_pad",
            spacing=(float(mm),) * 3,
            antialias=True,
        )
        for mm, shape in ((2, (80, 96, 112)), (1, (160, 192, 224)))
    },
    "generic": PreprocessConfig(
        "generic",
        (64, 64, 64),
        "percentile",
        None,
        unit="a.u.",
        inplane="crop_pad",
        depth="crop_pad",
        spacing=(1.0, 1.0, 1.0),
        antialias=True,
    ),
}


# Presets made for one generator family: their shape must stay base·2^k (see check_generator_shape).
GENERATOR_BASES: dict[str, Shape3] = {"brain-t1-2mm": (5, 6, 7), "brain-t1-1mm": (5, 6, 7)}


def get_preset(name: str, **overrides) -> PreprocessConfig:
    """A named preset with some parameters replaced (``None`` values are ignored)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "window" in overrides:
        overrides.setdefault("intensity", "window")
        if overrides["intensity"] == "window" and name in ("adni", "generic"):
            overrides.setdefault("unit", "HU")
    cfg = dataclasses.replace(PRESETS[name], **overrides)
    _validate(cfg)
    if name in GENERATOR_BASES:
        from medgan3d.networks.stylegan import check_generator_shape

        check_generator_shape(cfg.shape, GENERATOR_BASES[name], what=f"{name} shape")
    return cfg


def _validate(cfg: PreprocessConfig) -> None:
    if len(cfg.shape) != 3 or min(cfg.shape) < 1:
        raise ValueError(f"shape must be three positive ints (D, H, W), got {cfg.shape}")
    if cfg.intensity == "window" and (cfg.window is None or cfg.window[1] <= cfg.window[0]):
        raise ValueError(f"intensity window must be (lo, hi) with lo < hi, got {cfg.window}")
    if cfg.intensity not in ("window", "percentile"):
        raise ValueError(f"intensity must be 'window' or 'percentile', got {cfg.intensity!r}")
    for key in ("inplane", "depth"):
        if getattr(cfg, key) not in ("resize", "crop_pad"):
            raise ValueError(f"{key} must be 'resize' or 'crop_pad', got {getattr(cfg, key)!r}")
    if cfg.crop not in ("center", "random"):
        raise ValueError(f"crop must be 'center' or 'random', got {cfg.crop!r}")


# --------------------------------------------------------------------------------------------- intensity
def intensity_range(array: np.ndarray, cfg: PreprocessConfig, source: str = "") -> tuple[float, float]:
    """The (lo, hi) that maps to (-1, 1): the fixed window, or foreground percentiles."""
    if cfg.intensity == "window":
        assert cfg.window is not None, "_validate refuses a window preset without a window"
        return float(cfg.window[0]), float(cfg.window[1])
    fg = array[array > array.min()]
    if fg.size < 0.01 * array.size:
        fg = array.ravel()
    lo, hi = (float(v) for v in np.percentile(fg, cfg.percentiles))
    if hi <= lo:
        raise VolumeReadError(source, f"no intensity spread between percentiles {list(cfg.percentiles)}")
    return lo, hi


def normalize(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Clip to [lo, hi] and map linearly to [-1, 1] (Liu et al., arXiv 2208.03934 §4.2.1)."""
    out = (np.clip(array, lo, hi, dtype=np.float32) - np.float32(lo)) * np.float32(2.0 / (hi - lo)) - 1.0
    return out.astype(np.float32, copy=False)


def denormalize_values(volume: ArrayT, lo: float, hi: float) -> ArrayT:
    """Inverse of :func:`normalize` (inside the window): [-1, 1] -> [lo, hi]. Works on numpy and torch."""
    return (volume + 1.0) * ((hi - lo) / 2.0) + lo


def trim_blank_slices(x: np.ndarray, source: str = "") -> tuple[np.ndarray, tuple[int, int]]:
    """Drop leading and trailing axial slices of a normalised ``[D, H, W]`` volume that are all -1 (Sun et
    al.'s "blank slices": all air for CT); return the rest and how many were cut at (start, end)."""
    blank = (x <= -1.0).reshape(x.shape[0], -1).all(axis=1)
    kept = np.flatnonzero(~blank)
    if kept.size == 0:
        raise VolumeReadError(source, "every axial slice is blank (all voxels at the bottom of the window)")
    first, last = int(kept[0]), int(kept[-1])
    return x[first : last + 1], (first, x.shape[0] - 1 - last)


# --------------------------------------------------------------------------------------------- geometry
def _scale_affine(affine: np.ndarray, old: Shape3, new: Shape3) -> np.ndarray:
    """Affine after resampling a [D, H, W] grid ``old`` to ``new`` (align_corners=False)."""
    t = np.eye(4)
    for axis_xyz, axis_dhw in ((0, 2), (1, 1), (2, 0)):
        f = old[axis_dhw] / new[axis_dhw]
        t[axis_xyz, axis_xyz] = f
        t[axis_xyz, 3] = 0.5 * f - 0.5
    return affine @ t


def _shift_affine(affine: np.ndarray, offset_dhw: Sequence[int]) -> np.ndarray:
    """Affine after the new index 0 moved to old index ``offset`` (negative when padding)."""
    t = np.eye(4)
    t[:3, 3] = [offset_dhw[2], offset_dhw[1], offset_dhw[0]]
    return affine @ t


def resize(array: np.ndarray, shape: Shape3, antialias: bool = False) -> np.ndarray:
    """Resize ``[D, H, W]``: bilinear per axial slice when D is kept, else trilinear (align_corners=False)."""
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    if tuple(array.shape) == shape:
        return array
    if antialias:
        sigma = [max(0.0, (n / m - 1.0) / 2.0) for n, m in zip(array.shape, shape, strict=True)]
        if any(sigma):
            array = gaussian_filter(array, sigma, mode="nearest")
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if shape[0] == array.shape[0]:
        out = F.interpolate(x[:, None], size=shape[1:], mode="bilinear", align_corners=False)[:, 0]
    else:
        out = F.interpolate(x[None, None], size=shape, mode="trilinear", align_corners=False)[0, 0]
    return out.numpy()


def item_rng(seed: int, source: str) -> np.random.Generator:
    """A generator that depends only on the seed and the item's name, not on worker or order."""
    digest = int.from_bytes(hashlib.sha256(source.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def crop_or_pad(
    array: np.ndarray, axis: int, size: int, mode: str, rng: np.random.Generator | None, fill: float = -1.0
) -> tuple[np.ndarray, int]:
    """Take ``size`` consecutive slices along ``axis`` (centred or random start), or pad both sides with -1.

    Returns the array and the offset of the new index 0 in the old grid (negative: padding before).
    """
    n = array.shape[axis]
    if n >= size:
        if mode == "center":
            start = (n - size) // 2
        else:
            assert rng is not None, "random crops draw from rng"
            start = int(rng.integers(0, n - size + 1))
        return np.take(array, np.arange(start, start + size), axis=axis), start
    before = (size - n) // 2
    pad = [(0, 0)] * array.ndim
    pad[axis] = (before, size - n - before)
    return np.pad(array, pad, constant_values=fill), -before


# --------------------------------------------------------------------------------------------- pipeline
def preprocess(
    array: np.ndarray, meta: VolumeMeta, cfg: PreprocessConfig, source: str = ""
) -> tuple[np.ndarray, dict]:
    """Apply ``cfg`` to a canonical ``[D, H, W]`` volume; return ``[D', H', W']`` in [-1, 1] and item info.

    The metadata records the intensity range used, the output spacing/affine, the depth window or padding
    and which output slices hold data (``valid_slices``), so the manifest can map samples back.
    """
    affine = np.asarray(meta.affine, dtype=np.float64)
    spacing = np.asarray(meta.spacing, dtype=np.float64)
    lo, hi = intensity_range(array, cfg, source)
    x = normalize(array, lo, hi)
    trimmed = (0, 0)
    if cfg.trim_blank:
        x, trimmed = trim_blank_slices(x, source)
        affine = _shift_affine(affine, (trimmed[0], 0, 0))
    if cfg.spacing is not None:
        new = tuple(max(1, round(n * s / t)) for n, s, t in zip(x.shape, spacing, cfg.spacing, strict=True))
        affine = _scale_affine(affine, x.shape, new)
        spacing = spacing * np.asarray(x.shape) / np.asarray(new)
        x = resize(x, new, cfg.antialias)
    target = list(x.shape)
    if cfg.inplane == "resize":
        target[1:] = cfg.shape[1:]
    if cfg.depth == "resize":
        target[0] = cfg.shape[0]
    if tuple(target) != x.shape:
        affine = _scale_affine(affine, x.shape, tuple(target))
        spacing = spacing * np.asarray(x.shape) / np.asarray(target)
        x = resize(x, tuple(target), cfg.antialias)
    rng = item_rng(cfg.seed, source) if cfg.crop == "random" else None
    offsets = [0, 0, 0]
    for axis in range(3):
        if x.shape[axis] != cfg.shape[axis]:
            x, offsets[axis] = crop_or_pad(x, axis, cfg.shape[axis], cfg.crop, rng)
    affine = _shift_affine(affine, offsets)
    n_depth = target[0]
    valid = (max(0, -offsets[0]), min(cfg.shape[0], n_depth - offsets[0]))
    info = {
        "intensity_range": [lo, hi],
        "spacing": [float(s) for s in spacing],
        "affine": np.round(affine, 6).tolist(),
        "depth_offset": int(offsets[0]),
        "valid_slices": [int(valid[0]), int(valid[1])],
    }
    if cfg.trim_blank:
        info["trimmed_slices"] = [int(trimmed[0]), int(trimmed[1])]
    return np.clip(x, -1.0, 1.0).astype(np.float32, copy=False), info
