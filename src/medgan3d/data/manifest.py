"""The prepared dataset's manifest ``dataset.json`` as a typed, validated, read-only object.

``prepare`` writes the manifest (:func:`medgan3d.data.prepare.build_manifest`; schema in docs/data.md) and
every reader — the datasets, training, generation, evaluation, projection — gets a :class:`Manifest` from
:meth:`Manifest.load` instead of a dict: a field that is missing or of the wrong type is one clear error
naming the file and the field, found when the dataset is opened rather than deep in a run. The names and the
format tag of a prepared folder live here, so readers never import the writer.

Optional fields (present in some manifests only) are ``None`` when absent; new optional fields, e.g. per-item
class labels, are added the same way and older manifests keep loading.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medgan3d.data.preprocess import PreprocessConfig

FORMAT = "medgan3d-dataset"
FORMAT_VERSION = 1
ARRAY_NAME = "volumes.npy"
SLICES_NAME = "slices.npy"
MANIFEST_NAME = "dataset.json"
REPORT_NAME = "report.json"


class DatasetError(RuntimeError):
    """A folder that is not a complete prepared dataset; the message names it and the reason."""


def _get(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise DatasetError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise DatasetError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _numbers(
    obj: Mapping[str, Any], key: str, n: int | None, where: str, kind: type = float
) -> tuple[Any, ...]:
    values = _get(obj, key, list, where)
    if (n is not None and len(values) != n) or not all(isinstance(v, int | float) for v in values):
        raise DatasetError(f"{where}: field {key!r} must be a list of {n or 'some'} numbers, got {values!r}")
    return tuple(kind(v) for v in values)


@dataclass(frozen=True)
class Intensity:
    """What maps [-1, 1] back to the data's units: ``lo`` ↔ -1, ``hi`` ↔ +1.

    ``kind`` ``"window"``: the fixed window of the preset (HU for CT); ``"percentile"``: each scan was clipped to
    its own percentile range (``Item.intensity_range``) and ``lo``/``hi`` are the dataset's medians.
    """

    kind: str
    lo: float
    hi: float
    unit: str
    percentiles: tuple[float, ...] | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str) -> Intensity:
        kind = _get(d, "kind", str, where)
        if kind not in ("window", "percentile"):
            raise DatasetError(f"{where}: intensity kind must be 'window' or 'percentile', got {kind!r}")
        lo, hi = float(_get(d, "lo", (int, float), where)), float(_get(d, "hi", (int, float), where))
        pct = _numbers(d, "percentiles", None, where) if "percentiles" in d else None
        return cls(kind, lo, hi, str(d.get("unit", "")), pct)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``intensity`` block as written."""
        out: dict[str, Any] = {"kind": self.kind, "lo": self.lo, "hi": self.hi, "unit": self.unit}
        return out if self.percentiles is None else out | {"percentiles": list(self.percentiles)}


@dataclass(frozen=True)
class Item:
    """One prepared scan: its row in ``volumes.npy`` and what preprocessing recorded about it."""

    index: int
    source: str
    split: str
    spacing: tuple[float, float, float]
    affine: tuple[tuple[float, ...], ...]
    intensity_range: tuple[float, float]
    valid_slices: tuple[int, int]  # output slices [a, b) that hold data (the rest is depth padding)
    slice_rows: tuple[int, int] | None = None  # its rows [a, b) of slices.npy (prepare --all-slices)
    label: int | float | None = None  # its class or value (prepare --labels; medgan3d.data.labels)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Item:
        if not isinstance(d, Mapping):
            raise DatasetError(f"{where}: not an object")
        rows = _numbers(d, "slice_rows", 2, where, int) if "slice_rows" in d else None
        label = _get(d, "label", (int, float), where) if "label" in d else None
        affine = tuple(tuple(float(v) for v in row) for row in _get(d, "affine", list, where))
        return cls(
            index=int(_get(d, "index", int, where)),
            source=str(_get(d, "source", str, where)),
            split=str(_get(d, "split", str, where)),
            spacing=_numbers(d, "spacing", 3, where),
            affine=affine,
            intensity_range=_numbers(d, "intensity_range", 2, where),
            valid_slices=_numbers(d, "valid_slices", 2, where, int),
            slice_rows=rows,
            label=label,
        )


@dataclass(frozen=True)
class SliceArray:
    """``slices.npy``: every axial slice of every scan ``[count, *shape]`` (``prepare --all-slices``)."""

    array: str
    count: int
    shape: tuple[int, ...]
    sha256: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A prepared dataset's ``dataset.json``, checked; ``root`` is the folder it was read from."""

    root: Path
    array: str
    dtype: str
    count: int
    shape: tuple[int, int, int, int]  # [1, D, H, W]
    preset: PreprocessConfig
    intensity: Intensity
    spacing: tuple[float, float, float]  # mm, (D, H, W): the median of the scans' output spacings
    affine: tuple[tuple[float, ...], ...]
    splits: Mapping[str, tuple[int, ...]]
    items: tuple[Item, ...]
    slices: SliceArray | None = None
    content_hash: str | None = None
    labels: Mapping[str, Any] | None = None  # the labels block (medgan3d.data.labels.spec_of reads it)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the JSON as read

    @property
    def path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def affine_array(self) -> np.ndarray:
        return np.asarray(self.affine, dtype=np.float64)

    @classmethod
    def load(cls, root: str | os.PathLike[str], check_array: bool = True) -> Manifest:
        """Read and check ``root/dataset.json``; with ``check_array`` also ``volumes.npy``'s header against it.

        ``check_array=False`` reads a copy kept without the data (a run folder's ``dataset.json``).
        Raises :class:`DatasetError` naming the file and the reason.
        """
        root = Path(root)
        path = root / MANIFEST_NAME
        if not path.is_file():
            raise DatasetError(f"{root}: not a prepared dataset (no {MANIFEST_NAME}); run `medgan3d prepare`")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DatasetError(f"{path}: unreadable manifest ({err})") from None
        manifest = cls.from_dict(raw, root)
        if check_array:
            arr = manifest.open_array()
            if tuple(arr.shape) != (manifest.count, *manifest.shape):
                raise DatasetError(
                    f"{root / manifest.array}: shape {list(arr.shape)} != manifest "
                    f"{[manifest.count, *manifest.shape]}"
                )
        return manifest

    @classmethod
    def of(cls, data: Manifest | str | os.PathLike[str]) -> Manifest:
        """``data`` itself when it is a manifest already, else :meth:`load` of the folder ``data``."""
        return data if isinstance(data, Manifest) else cls.load(data)

    @classmethod
    def from_dict(cls, raw: Any, root: str | os.PathLike[str]) -> Manifest:
        """Check a parsed ``dataset.json`` (errors name ``root/dataset.json`` and the field)."""
        root = Path(root)
        where = str(root / MANIFEST_NAME)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise DatasetError(f"{where}: not a medgan3d dataset manifest")
        shape = _numbers(raw, "shape", 4, where, int)
        try:
            preset = PreprocessConfig.from_dict(_get(raw, "preset", dict, where))
        except (TypeError, ValueError, KeyError) as err:
            raise DatasetError(f"{where}: field 'preset' is not a preprocessing preset ({err})") from None
        splits = _get(raw, "splits", dict, where)
        items = _get(raw, "items", list, where)
        slices = raw.get("slices")
        manifest = cls(
            root=root,
            array=str(raw.get("array", ARRAY_NAME)),
            dtype=str(raw.get("dtype", "float32")),
            count=int(_get(raw, "count", int, where)),
            shape=shape,
            preset=preset,
            intensity=Intensity.from_dict(_get(raw, "intensity", dict, where), f"{where}: intensity"),
            spacing=_numbers(raw, "spacing", 3, where),
            affine=tuple(tuple(float(v) for v in row) for row in _get(raw, "affine", list, where)),
            splits={str(k): tuple(int(i) for i in v) for k, v in splits.items()},
            items=tuple(Item.from_dict(it, f"{where}: items[{i}]") for i, it in enumerate(items)),
            slices=None if slices is None else _slice_array(slices, f"{where}: slices"),
            content_hash=raw.get("content_hash"),
            labels=_labels_block(raw.get("labels"), where),
            raw=raw,
        )
        if manifest.slices is not None and any(it.slice_rows is None for it in manifest.items):
            raise DatasetError(f"{where}: has 'slices' but an item lacks its 'slice_rows'")
        if manifest.labels and any(it.label is None for it in manifest.items):
            raise DatasetError(f"{where}: has 'labels' but an item lacks its 'label'")
        return manifest

    def open_array(self) -> np.ndarray:
        """``volumes.npy`` as a read-only memmap ``[N, 1, D, H, W]`` (no pickle is ever loaded)."""
        return open_array(self.root / self.array)

    def indices(self, split: str) -> list[int]:
        """Rows of ``split`` (``"train"``, ``"val"``; ``"all"``: every row)."""
        if split == "all":
            return list(range(self.count))
        if split not in self.splits:
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        return list(self.splits[split])


def _labels_block(block: Any, where: str) -> Mapping[str, Any] | None:
    if block is None or isinstance(block, Mapping):
        return block
    raise DatasetError(f"{where}: field 'labels' has the wrong type ({type(block).__name__})")


def _slice_array(d: Any, where: str) -> SliceArray:
    if not isinstance(d, Mapping):
        raise DatasetError(f"{where}: not an object")
    count = int(_get(d, "count", int, where))
    return SliceArray(
        str(_get(d, "array", str, where)), count, _numbers(d, "shape", None, where, int), d.get("sha256")
    )


def open_array(path: Path) -> np.ndarray:
    """A ``.npy`` of the prepared folder as a read-only memmap (no pickle is ever loaded)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: cannot open the volume array ({err})") from None
