"""Datasets over a prepared cache.

:class:`VolumeDataset` yields volumes ``[1, D, H, W]``; :class:`SliceDataset` yields axial slices
``[1, H, W]`` of the same cache, for the 2D pretraining of Liu et al., arXiv 2208.03934 §3.2. Both open ``volumes.npy``
memory-mapped and lazily (once per DataLoader worker, never pickled), so an item costs one small copy.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medgan3d.data.manifest import ARRAY_NAME, DatasetError, Manifest, open_array
from medgan3d.data.preprocess import ArrayT, denormalize_values

_AXES = {"D": 1, "H": 2, "W": 3}
SLICE_SOURCES = ("auto", "all", "window")


def load_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The JSON of ``root/dataset.json``, checked as :meth:`Manifest.load` checks it.

    For tools that want every field as written; code of this package takes the typed :class:`Manifest`.
    """
    return dict(Manifest.load(root).raw)


def open_volumes(root: str | os.PathLike, manifest: Manifest | None = None) -> np.ndarray:
    """The cache as a read-only memmap ``[N, 1, D, H, W]`` (no pickle is ever loaded)."""
    return open_array(Path(root) / (manifest.array if manifest is not None else ARRAY_NAME))


def slice_source(manifest: Manifest, requested: str = "auto") -> str:
    """Where a dataset's axial slices come from: ``"all"`` (every slice of the scans) or ``"window"``.

    ``"all"``: ``slices.npy`` when the dataset was prepared with ``all_slices``, or the volumes themselves when
    the preset resizes the depth (they then hold every slice). ``"window"``: the slices of the cached volumes
    (for ``coca``, the 32-slice window). ``"auto"``: ``"all"`` when available, else ``"window"``. Liu et al.
    (arXiv 2208.03934 §4.3.1) pretrain on all axial slices; a cropped-depth dataset without ``slices.npy`` cannot
    give them and ``"all"`` raises :class:`DatasetError` saying how to prepare it.
    """
    if requested not in SLICE_SOURCES:
        raise ValueError(f"slices must be one of {SLICE_SOURCES}, got {requested!r}")
    complete = manifest.slices is not None or manifest.preset.depth != "crop_pad"
    if requested == "all" and not complete:
        raise DatasetError(
            "the dataset holds only a window of each scan's axial slices; prepare it with "
            "--all-slices (prepare_dataset(..., all_slices=True)) to keep all of them"
        )
    return "window" if requested == "window" or not complete else "all"


def denormalize(volume: ArrayT, manifest: Manifest, item: int | None = None) -> ArrayT:
    """Map model intensities [-1, 1] back to the data's units (HU for CT presets).

    Window presets invert the fixed window; percentile presets (MRI) use the item's own range when
    ``item`` is given, else the dataset's median range. Works on numpy arrays and torch tensors.
    """
    lo, hi = manifest.intensity.lo, manifest.intensity.hi
    if item is not None and manifest.intensity.kind == "percentile":
        lo, hi = manifest.items[item].intensity_range
    return denormalize_values(volume, lo, hi)


def _flip_dims(flip: bool | Sequence[str], offset: int) -> list[int]:
    """Axis names -> tensor dims; ``True`` means left-right (W), the anatomically plausible flip."""
    names = ("W",) if flip is True else () if flip is False else tuple(flip)
    bad = [a for a in names if a not in _AXES]
    if bad:
        raise ValueError(f"flip axes must be among D, H, W, got {bad}")
    return [_AXES[a] - offset for a in names]


class _CacheDataset(Dataset):
    def __init__(
        self, root: Manifest | str | os.PathLike, split: str, flip: bool | Sequence[str], flip_p: float
    ) -> None:
        self.manifest = Manifest.of(root)  # a manifest the caller already read is not read again
        self.root = self.manifest.root
        self.indices = self.manifest.indices(split)
        self.split = split
        self.flip_p = float(flip_p)
        self._array: np.ndarray | None = None
        self._slices: np.ndarray | None = None
        self._flip = flip

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = self.manifest.open_array()
        return self._array

    @property
    def slice_array(self) -> np.ndarray:
        """``slices.npy`` ``[M, 1, H, W]`` (every axial slice), memory-mapped on first use."""
        if self._slices is None:
            assert self.manifest.slices is not None, "the dataset has no slices.npy"
            self._slices = open_array(self.root / self.manifest.slices.array)
        return self._slices

    def __getstate__(self) -> dict:
        # A memmap would be pickled by value: send the path, each worker reopens it.
        state = dict(self.__dict__)
        state["_array"] = state["_slices"] = None
        return state

    @property
    def labelled(self) -> bool:
        """Whether the dataset was prepared with labels (``prepare --labels``)."""
        return bool(self.manifest.labels)

    def label(self, i: int) -> int | float:
        """The label of volume ``i`` of the split (a labelled dataset; :mod:`medgan3d.data.labels`)."""
        if not self.labelled:
            raise DatasetError(f"{self.root}: the dataset has no labels (prepare it with --labels CSV)")
        label = self.manifest.items[self.indices[i]].label
        assert label is not None  # Manifest.load refuses a labelled manifest with an unlabelled item
        return label

    def _maybe_flip(self, x: torch.Tensor, dims: list[int]) -> torch.Tensor:
        chosen = [d for d in dims if torch.rand(()) < self.flip_p]
        return torch.flip(x, chosen) if chosen else x


class VolumeDataset(_CacheDataset):
    """Volumes ``[1, D, H, W]`` float32 in [-1, 1] from a prepared folder.

    split: ``"train"``, ``"val"`` or ``"all"``. flip: ``False``, ``True`` (left-right) or axis names
    (``("W", "H")``), each flipped with probability ``flip_p`` with torch's RNG (seeded per DataLoader
    worker).
    """

    def __init__(
        self,
        root: Manifest | str | os.PathLike,
        split: str = "train",
        flip: bool | Sequence[str] = False,
        flip_p: float = 0.5,
    ) -> None:
        super().__init__(root, split, flip, flip_p)
        self._dims = _flip_dims(flip, 0)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = torch.from_numpy(np.array(self.array[self.indices[i]], dtype=np.float32))
        return self._maybe_flip(x, self._dims)


class SliceDataset(_CacheDataset):
    """Axial slices ``[1, H, W]`` of the scans of a split, for 2D pretraining (Liu et al., arXiv 2208.03934 §3.2).

    ``slices`` (see :func:`slice_source`): ``"auto"`` (default) uses every axial slice of the scans when the
    dataset has them (``slices.npy`` from ``prepare --all-slices``, or a depth-resizing preset), else the
    slices of the cached volumes; ``"all"`` insists on every slice; ``"window"`` uses the cached volumes'
    slices. From the volumes only slices that hold data are used (``valid_slices`` in the manifest: the -1
    padding that aligns short scans to the depth is skipped); ``include_padding=True`` uses all D slices.
    ``self.slices`` is the source used. flip axes are ``"H"`` and ``"W"``.
    """

    def __init__(
        self,
        root: Manifest | str | os.PathLike,
        split: str = "train",
        flip: bool | Sequence[str] = False,
        flip_p: float = 0.5,
        include_padding: bool = False,
        slices: str = "auto",
    ) -> None:
        super().__init__(root, split, flip, flip_p)
        self._dims = _flip_dims(flip, 1)
        if any(d < 1 for d in self._dims):
            raise ValueError("slices can be flipped along H and W only")
        self.slices = slice_source(self.manifest, slices)
        self._from_file = self.slices == "all" and self.manifest.slices is not None
        items, depth = self.manifest.items, self.manifest.shape[1]
        pairs = []
        for v in self.indices:
            if self._from_file:  # (-1, row of slices.npy)
                rows = items[v].slice_rows
                assert rows is not None, f"{self.manifest.path}: items[{v}] has no slice_rows"
                a, b = rows
                pairs += [(-1, r) for r in range(a, b)]
            else:
                a, b = (0, depth) if include_padding else items[v].valid_slices
                pairs += [(v, d) for d in range(a, b)]
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> torch.Tensor:
        v, d = self.pairs[i]
        source = self.slice_array[d] if v < 0 else self.array[v, :, d]
        x = torch.from_numpy(np.array(source, dtype=np.float32))
        return self._maybe_flip(x, self._dims)
