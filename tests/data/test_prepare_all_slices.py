"""`prepare --all-slices`: every axial slice of every scan for 2D pretraining (Liu et al., arXiv 2208.03934, §3.2, §4.3.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medgan3d.data import (
    DatasetError,
    SliceDataset,
    get_preset,
    load_manifest,
    make_brain_phantoms,
    make_heart_phantoms,
    open_volumes,
    prepare_dataset,
    read_volume,
)
from tests.data.scans import save_nifti, smooth_volume

DEPTHS = (6, 9, 12, 17)  # scans shorter and longer than the 8-slice window


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(3)
    for i, depth in enumerate(DEPTHS):
        save_nifti(tmp / f"s{i}.nii.gz", smooth_volume(rng, (16, 16, depth), -250, 650))
    return tmp


@pytest.fixture(scope="module")
def cache(scans) -> str:
    out = scans.parent / f"{scans.name}-out"
    prepare_dataset(scans, out, get_preset("coca", shape=(8, 16, 16)), dtype="float32", all_slices=True)
    return str(out)


def test_all_slices_counts_every_slice_of_every_scan(cache) -> None:
    m = load_manifest(cache)
    assert m["slices"]["count"] == sum(DEPTHS) and m["slices"]["shape"] == [1, 16, 16]
    assert len(SliceDataset(cache, split="all")) == sum(DEPTHS)  # "auto" takes them
    assert SliceDataset(cache, split="all").slices == "all"
    window = SliceDataset(cache, split="all", slices="window")
    assert window.slices == "window" and len(window) == sum(min(d, 8) for d in DEPTHS)
    train = SliceDataset(cache, split="train", slices="all")
    assert len(train) == sum(m["items"][v]["original_shape"][0] for v in train.indices)


def test_all_slices_are_the_volume_slices_outside_the_window_too(cache, scans) -> None:
    """Inside the window each slice equals the cached volume's; every slice equals an independent per-slice
    preprocessing of the raw scan (HU window [-250, 650] → [-1, 1], bilinear in-plane resize)."""
    m = load_manifest(cache)
    volumes, rows = open_volumes(cache), np.load(f"{cache}/slices.npy")
    for item in m["items"]:
        a, b = item["slice_rows"]
        mine = rows[a:b, 0]
        lo, hi = item["valid_slices"]
        off = item["depth_offset"]
        np.testing.assert_array_equal(volumes[item["index"], 0, lo:hi], mine[lo + off : hi + off])
        raw = read_volume(scans / item["source"])[0]  # canonical [D, H, W], 16×16 in plane already
        expected = np.clip((np.clip(raw, -250, 650) + 250) / 450 - 1, -1, 1)
        np.testing.assert_allclose(mine, expected, atol=1e-5)


def test_all_slices_is_refused_where_the_dataset_lacks_them(scans, tmp_path) -> None:
    prepare_dataset(scans, tmp_path / "plain", get_preset("coca", shape=(8, 16, 16)))
    assert not (tmp_path / "plain" / "slices.npy").exists()
    assert SliceDataset(tmp_path / "plain", split="all").slices == "window"
    with pytest.raises(DatasetError, match="--all-slices"):
        SliceDataset(tmp_path / "plain", split="all", slices="all")


def test_depth_resizing_presets_already_hold_every_slice(tmp_path) -> None:
    make_brain_phantoms(3, tmp_path / "b", shape=(16, 16, 16), all_slices=True)
    manifest = json.loads((tmp_path / "b" / "dataset.json").read_text())
    assert "slices" not in manifest and not (tmp_path / "b" / "slices.npy").exists()
    assert len(SliceDataset(tmp_path / "b", split="all", slices="all")) == 3 * 16


def test_heart_phantoms_with_all_slices(tmp_path) -> None:
    make_heart_phantoms(
        3, tmp_path / "h", shape=(16, 16, 16), inplane=32, all_slices=True, raw_dir=tmp_path / "r"
    )
    m = load_manifest(tmp_path / "h")
    raw_depths = sum(read_volume(p)[0].shape[0] for p in sorted((tmp_path / "r").glob("*.nii.gz")))
    assert m["slices"]["count"] == raw_depths > 3 * 16
    assert len(SliceDataset(tmp_path / "h", split="all")) == raw_depths
