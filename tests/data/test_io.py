"""Readers/writers: canonical RAS [D, H, W], geometry kept, bad files named with a reason."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from medgan3d.data import VolumeReadError, read_volume, read_volumes, write_nifti
from tests.data.scans import save_nifti, smooth_volume, write_dicom_series


def _world(affine: np.ndarray, index) -> np.ndarray:
    return (np.asarray(affine) @ np.array([*index, 1.0]))[:3]


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([-0.8, -0.9, 2.5, 1.0]),  # LPS, as DICOM converters often write
        np.array([[0, 0, 1.5, 10], [-1.0, 0, 0, 20], [0, -2.0, 0, -5], [0, 0, 0, 1]]),  # permuted: PIR-like
    ],
)
def test_nifti_reorients_to_ras_with_voxel_in_place(tmp_path, affine):
    data = np.zeros((7, 9, 11), dtype=np.float32)
    data[1, 2, 3] = 100.0  # the marker, at file index (1, 2, 3)
    data[0, 0, 0] = 5.0
    path = save_nifti(tmp_path / "x.nii.gz", data, affine)
    array, meta = read_volume(path)
    d, h, w = np.argwhere(array == 100.0)[0]
    # Independent check: the marker's world position from the file affine equals the one from ours.
    np.testing.assert_allclose(_world(meta.affine, (w, h, d)), _world(affine, (1, 2, 3)), atol=1e-5)
    axcodes = nib.aff2axcodes(meta.affine)
    assert axcodes == ("R", "A", "S")
    assert meta.orientation_in == "".join(nib.aff2axcodes(affine))
    zooms = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))
    assert sorted(meta.spacing) == pytest.approx(sorted(zooms))
    k = int(np.argmax(np.abs(np.asarray(affine)[2, :3])))  # the file axis that runs inferior-superior
    assert (array.shape[0], meta.spacing[0]) == (data.shape[k], pytest.approx(zooms[k]))


def test_lps_nifti_explicit_flip(tmp_path):
    """File index (0, 0, 0) of an LPS file is the right-most, most posterior voxel: W = nx-1, H = ny-1, D = 0."""
    data = np.zeros((4, 5, 6), dtype=np.float32)
    data[0, 0, 0] = 1.0
    array, meta = read_volume(save_nifti(tmp_path / "lps.nii", data, np.diag([-1.0, -2.0, 3.0, 1.0])))
    assert array.shape == (6, 5, 4)
    assert array[0, 4, 3] == 1.0
    assert meta.spacing == (3.0, 2.0, 1.0)


def test_itk_lps_world_to_ras(tmp_path):
    """An .mha with a rotated direction: the marker lands where ITK's own geometry (LPS) says, in RAS."""
    arr = np.zeros((5, 6, 7), dtype=np.int16)  # ITK array order [z, y, x]
    arr[3, 1, 2] = 500
    arr[0, 0, 0] = -5
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((0.5, 0.75, 2.0))
    image.SetOrigin((10.0, -4.0, 30.0))
    image.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))
    sitk.WriteImage(image, str(tmp_path / "x.mha"))
    lps = np.array(image.TransformIndexToPhysicalPoint((2, 1, 3)))
    array, meta = read_volume(tmp_path / "x.mha")
    d, h, w = np.argwhere(array == 500)[0]
    np.testing.assert_allclose(_world(meta.affine, (w, h, d)), lps * [-1, -1, 1], atol=1e-5)
    assert nib.aff2axcodes(meta.affine) == ("R", "A", "S")


def test_write_nifti_keeps_affine_spacing_and_values(tmp_path):
    vol = np.random.default_rng(0).normal(size=(6, 7, 8)).astype(np.float32)
    affine = np.array([[0.7, 0, 0, -20], [0, 0.8, 0, 5], [0, 0, 2.5, 40], [0, 0, 0, 1.0]])
    path = write_nifti(tmp_path / "o.nii.gz", torch.from_numpy(vol)[None], affine=affine)
    img = nib.load(str(path))
    np.testing.assert_allclose(img.affine, affine)
    assert img.header.get_zooms() == pytest.approx((0.7, 0.8, 2.5))
    back, meta = read_volume(path)
    np.testing.assert_array_equal(back, vol)
    assert meta.spacing == pytest.approx((2.5, 0.8, 0.7))
    path2 = write_nifti(tmp_path / "s.nii", vol, spacing=(3.0, 1.0, 0.5))
    assert nib.load(str(path2)).header.get_zooms() == pytest.approx((0.5, 1.0, 3.0))


def test_dicom_series_sorted_by_position(tmp_path):
    vol = np.arange(5 * 4 * 4, dtype=np.int16).reshape(5, 4, 4) * 3 - 20
    files = write_dicom_series(tmp_path / "s", vol, "1.2.3.9", spacing=(2.5, 0.5, 0.5))
    # Shuffle file names so that name order is not slice order.
    order = [3, 0, 4, 1, 2]
    for f in files:
        f.rename(f.with_suffix(".tmp"))
    for new, old in zip(order, files, strict=True):
        old.with_suffix(".tmp").rename(tmp_path / "s" / f"x{new}.dcm")
    (res,) = read_volumes(tmp_path / "s")
    assert res.source.endswith("#1.2.3.9")
    assert res.meta.spacing == pytest.approx((2.5, 0.5, 0.5))
    # DICOM is LPS: rows run anterior->posterior and columns right->left, so RAS flips both in-plane axes.
    np.testing.assert_array_equal(res.array, vol[:, ::-1, ::-1].astype(np.float32))


def test_npz_stack_is_split_and_labels_ignored(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 255, (4, 6, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / "m.npz", test_images=imgs, test_labels=np.arange(4)[:, None])
    res = read_volumes(tmp_path / "m.npz", "m.npz")
    assert [r.source for r in res] == [f"m.npz:test_images[{i}]" for i in range(4)]
    np.testing.assert_array_equal(res[2].array, imgs[2])


def test_object_npy_is_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (err,) = read_volumes(tmp_path / "o.npy")
    assert isinstance(err, VolumeReadError) and "pickle" in err.reason.lower()


def test_read_volume_errors_name_file(tmp_path):
    save_nifti(tmp_path / "flat.nii", smooth_volume(np.random.default_rng(0), (5, 5)))
    with pytest.raises(VolumeReadError, match=r"flat\.nii: 2D image"):
        read_volume(tmp_path / "flat.nii")
    with pytest.raises(VolumeReadError, match="no such file"):
        read_volume(tmp_path / "missing.nii.gz")


def test_multiframe_dicom_file_in_a_folder_is_one_volume(tmp_path):
    """A single multi-frame file is a whole series of one file: a volume, not a '1 slice' series."""
    vol = np.random.default_rng(0).integers(0, 2000, (6, 8, 10)).astype(np.uint16)
    image = sitk.GetImageFromArray(vol)
    image.SetSpacing((0.5, 0.5, 2.0))
    (tmp_path / "mf").mkdir()
    sitk.WriteImage(image, str(tmp_path / "mf" / "volume.dcm"))
    (res,) = read_volumes(tmp_path / "mf")
    assert not isinstance(res, VolumeReadError), res
    assert res.array.shape == (6, 8, 10) and res.meta.spacing == pytest.approx((2.0, 0.5, 0.5))
    np.testing.assert_array_equal(res.array, vol[:, ::-1, ::-1].astype(np.float32))
    single = tmp_path / "one"
    write_dicom_series(single, vol[:1].astype(np.int16), "1.2.3.5")
    (err,) = read_volumes(single)
    assert isinstance(err, VolumeReadError) and "1 slice" in err.reason
