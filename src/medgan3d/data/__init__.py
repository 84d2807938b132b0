"""Data: readers/writers, paper preprocessing presets, the prepared cache and its datasets, phantoms.

See docs/data.md for formats, presets, the manifest schema and the embedded phantom datasets.
"""

from __future__ import annotations

from medgan3d.data.dataset import (
    DatasetError,
    SliceDataset,
    VolumeDataset,
    denormalize,
    load_manifest,
    open_volumes,
)
from medgan3d.data.io import (
    Volume,
    VolumeMeta,
    VolumeReadError,
    read_volume,
    read_volumes,
    spacing_affine,
    write_nifti,
)
from medgan3d.data.manifest import Intensity, Item, Manifest
from medgan3d.data.phantoms import (
    brain_phantom,
    heart_phantom,
    make_brain_phantoms,
    make_heart_phantoms,
)
from medgan3d.data.prepare import PrepareError, discover, prepare_dataset
from medgan3d.data.preprocess import PRESETS, PreprocessConfig, get_preset, normalize, preprocess

__all__ = [
    "PRESETS",
    "DatasetError",
    "Intensity",
    "Item",
    "Manifest",
    "PrepareError",
    "PreprocessConfig",
    "SliceDataset",
    "Volume",
    "VolumeDataset",
    "VolumeMeta",
    "VolumeReadError",
    "brain_phantom",
    "denormalize",
    "discover",
    "get_preset",
    "heart_phantom",
    "load_manifest",
    "make_brain_phantoms",
    "make_heart_phantoms",
    "normalize",
    "open_volumes",
    "prepare_dataset",
    "preprocess",
    "read_volume",
    "read_volumes",
    "spacing_affine",
    "write_nifti",
]
