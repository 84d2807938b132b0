"""Volumes to score: the real set of a prepared dataset, and generated volumes from any tool.

Generated files (NIfTI, NRRD/MHA, npy/npz stacks, DICOM series) are brought to the dataset's shape and
intensity range in one of two documented ways (docs/evaluation.md):

- ``"model"``: the file already holds model intensities in [-1, 1] at the dataset's shape (what a
  generator outputs); values are only clipped to [-1, 1].
- ``"preset"``: the file holds scanner units (HU for CT, a.u. for MRI) at any size, like a real scan; it goes
  through the *same* preprocessing preset that made the dataset (recorded in its manifest): windowing or
  percentile normalisation, resizing, depth crop/pad.
- ``"auto"`` (default) picks ``"model"`` when the shape matches and all values lie in [-1, 1] (±1e-3), else
  ``"preset"``; the choice is recorded per file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from medgan3d.data import VolumeReadError, preprocess, read_volumes
from medgan3d.data.io import IMAGE_SUFFIXES, Volume, suffix_of
from medgan3d.data.manifest import Manifest

MODES = ("auto", "model", "preset")


class FakeVolumesError(RuntimeError):
    """Generated volumes that cannot be used; the message names every bad file and its reason."""


def real_indices(
    manifest: Manifest,
    split: str = "all",
    limit: int | None = None,
    seed: int = 0,
    label: float | None = None,
) -> list[int]:
    """Indices of the real set: a split (``all``/``train``/``val``), only the items of class ``label`` when
    given (a labelled dataset), optionally a seeded subset of ``limit``."""
    idx = list(range(manifest.count)) if split == "all" else list(manifest.splits.get(split, ()))
    if label is not None:
        if not manifest.labels:
            raise ValueError("the dataset has no labels (prepare --labels) to select a class from")
        idx = [i for i in idx if manifest.items[i].label == label]
        if not idx:
            raise ValueError(f"dataset split {split!r} holds no item of label {label:g}")
    if not idx:
        raise ValueError(f"dataset split {split!r} is empty")
    if limit is not None and limit < len(idx):
        idx = sorted(np.random.default_rng(seed).choice(idx, limit, replace=False).tolist())
    return idx


def load_real(data: Manifest | str | os.PathLike, indices: list[int]) -> Tensor:
    """Real volumes ``[N, 1, D, H, W]`` float32 in [-1, 1] from the dataset cache (a manifest or its folder)."""
    arr = Manifest.of(data).open_array()
    return torch.from_numpy(np.asarray(arr[np.asarray(indices)], dtype=np.float32))


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FakeVolumesError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and suffix_of(p) in IMAGE_SUFFIXES)
    if not files:
        raise FakeVolumesError(f"{folder}: no volume files (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def _fits_model_space(array: np.ndarray, shape: tuple[int, ...]) -> bool:
    return tuple(array.shape) == shape and float(array.min()) >= -1.001 and float(array.max()) <= 1.001


def to_dataset_space(volume: Volume, manifest: Manifest, mode: str) -> tuple[np.ndarray, str]:
    """One read :class:`~medgan3d.data.Volume` as ``[D, H, W]`` in [-1, 1] at the dataset shape, and the mode used."""
    shape = tuple(manifest.shape[1:])
    chosen = mode if mode != "auto" else ("model" if _fits_model_space(volume.array, shape) else "preset")
    if chosen == "model":
        if tuple(volume.array.shape) != shape:
            raise VolumeReadError(volume.source, f"shape {list(volume.array.shape)} != dataset {list(shape)}")
        return np.clip(volume.array, -1.0, 1.0), chosen
    array, _ = preprocess(volume.array, volume.meta, manifest.preset, volume.source)
    return array, chosen


def load_fake_dir(
    folder: str | os.PathLike, data: Manifest | str | os.PathLike, mode: str = "auto"
) -> tuple[Tensor, list[dict]]:
    """Every volume under ``folder`` as ``[N, 1, D, H, W]`` in the dataset's space, and a record per volume.

    Raises :class:`FakeVolumesError` naming every file that could not be read or converted.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    manifest = Manifest.of(data)
    arrays, records, errors = [], [], []
    for path in _files(Path(folder)):
        for res in read_volumes(path):
            try:
                if isinstance(res, VolumeReadError):
                    raise res
                array, used = to_dataset_space(res, manifest, mode)
            except VolumeReadError as err:
                errors.append(str(err))
                continue
            arrays.append(array)
            records.append({"source": res.source, "mode": used, "shape_in": list(res.array.shape)})
    if errors:
        raise FakeVolumesError(f"{len(errors)} generated volume(s) unusable:\n  " + "\n  ".join(errors))
    return torch.from_numpy(np.stack(arrays)[:, None].astype(np.float32)), records
