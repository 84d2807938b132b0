"""Datasets over the cache: shapes, splits, flips, slice view, DataLoader workers, denormalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medgan3d.data import (
    DatasetError,
    Manifest,
    SliceDataset,
    VolumeDataset,
    denormalize,
    get_preset,
    load_manifest,
    open_volumes,
    prepare_dataset,
    read_volume,
    write_nifti,
)
from tests.data.scans import save_nifti, smooth_volume


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    """10 scans of 6-14 slices prepared to 8×16×16, so some are cropped and some padded."""
    tmp = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(7)
    for i in range(10):
        save_nifti(tmp / f"s{i}.nii.gz", smooth_volume(rng, (16, 16, 6 + i), -250, 650))
    prepare_dataset(
        tmp, tmp / "out", get_preset("coca", shape=(8, 16, 16)), val_fraction=0.2, dtype="float32"
    )
    return str(tmp / "out")


def test_volume_dataset_splits_and_items(cache):
    train, val, every = (
        VolumeDataset(cache),
        VolumeDataset(cache, split="val"),
        VolumeDataset(cache, split="all"),
    )
    assert (len(train), len(val), len(every)) == (8, 2, 10)
    assert not set(train.indices) & set(val.indices)
    x = train[0]
    assert x.shape == (1, 8, 16, 16) and x.dtype == torch.float32
    np.testing.assert_array_equal(x.numpy(), open_volumes(cache)[train.indices[0]])


def test_flip_is_exactly_a_mirror(cache):
    plain = VolumeDataset(cache, split="all")
    flipped = VolumeDataset(cache, split="all", flip=True, flip_p=1.0)
    torch.testing.assert_close(flipped[3], plain[3].flip(-1))
    both = VolumeDataset(cache, split="all", flip=("W", "H"), flip_p=1.0)
    torch.testing.assert_close(both[3], plain[3].flip(-1).flip(-2))
    with pytest.raises(ValueError, match="flip axes"):
        VolumeDataset(cache, flip=("X",))


def test_slice_view_skips_padding(cache):
    m = load_manifest(cache)
    ds = SliceDataset(cache, split="all")
    expected = sum(b - a for a, b in (it["valid_slices"] for it in m["items"]))
    assert len(ds) == expected < 10 * 8
    assert len(SliceDataset(cache, split="all", include_padding=True)) == 80
    v, d = ds.pairs[5]
    np.testing.assert_array_equal(ds[5].numpy(), open_volumes(cache)[v, :, d])
    assert ds[5].shape == (1, 16, 16)
    assert all(float(ds[i].max()) > -1 for i in range(len(ds)))  # no all-background padding slice


def test_dataloader_workers_do_not_copy_the_cache(cache):
    ds = VolumeDataset(cache, split="all")
    _ = ds[0]  # opens the memmap in this process
    assert ds.__getstate__()["_array"] is None
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert torch.cat(batches).shape == (10, 1, 8, 16, 16)


def test_denormalize_and_write_back_in_hu(cache, tmp_path):
    m = Manifest.load(cache)
    hu = torch.tensor([-1.0, 0.0, 0.5, 1.0])
    torch.testing.assert_close(denormalize(hu, m), torch.tensor([-250.0, 200.0, 425.0, 650.0]))
    sample = VolumeDataset(cache, split="all")[0]
    path = write_nifti(tmp_path / "g.nii.gz", denormalize(sample, m), affine=m.affine_array)
    back, meta = read_volume(path)
    np.testing.assert_allclose(back, denormalize(sample.numpy()[0], m), atol=1e-4)
    assert meta.spacing == pytest.approx(m.spacing)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not a prepared dataset"):
        VolumeDataset(tmp_path)
