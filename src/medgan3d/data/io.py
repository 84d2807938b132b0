"""Readers and writers for 3D medical volumes.

Every reader returns a float32 array ``[D, H, W]`` in the canonical RAS orientation, where D runs
inferior→superior (the axial/slice axis), H posterior→anterior and W left→right, together with a
:class:`VolumeMeta` that keeps the voxel spacing and the affine. The affine follows the NIfTI convention:
it maps the voxel index ``(w, h, d)`` (note the order) to RAS millimetres, so that
``write_nifti(path, array, affine=meta.affine)`` reproduces the scan's geometry.
Parsing is left to nibabel (NIfTI) and SimpleITK (DICOM, NRRD, MHA/MHD); this module only validates
and reorients.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
NUMPY_SUFFIXES = (".npy", ".npz")
DICOM_SUFFIXES = (".dcm", ".ima")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + ITK_SUFFIXES + NUMPY_SUFFIXES + DICOM_SUFFIXES

# Voxels one volume may claim in its header before any data is read: 512 Mi (2 GiB once decoded to float32).
MAX_VOXELS = 512 * 1024**2

# LPS (DICOM/ITK world) <-> RAS (NIfTI world): negate x and y.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class VolumeReadError(Exception):
    """A file that cannot be used as a 3D volume; ``str(err)`` names the file and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass
class VolumeMeta:
    """Geometry of a canonical (RAS) volume ``[D, H, W]``.

    ``spacing`` is in array order (d, h, w) in mm; ``affine`` is the 4×4 NIfTI affine for index (w, h, d);
    ``orientation_in`` the axis codes of the file before reorientation (e.g. ``"LPS"``).
    """

    spacing: tuple[float, float, float]
    affine: np.ndarray
    orientation_in: str = "RAS"
    shape_in: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)


@dataclass
class Volume:
    """One readable volume with the name it is reported under (a path, ``dir#series`` or ``file:key[i]``)."""

    source: str
    array: np.ndarray
    meta: VolumeMeta


def suffix_of(path: str | os.PathLike) -> str:
    """Lower-case image suffix, treating ``.nii.gz`` as one suffix."""
    name = str(path).lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


# --------------------------------------------------------------------------------------------- checks
def _check_shape(source: str, shape: Sequence[int]) -> tuple[int, ...]:
    """Accept 3D shapes (and 4D with a singleton last axis); name 2D/4D/5D images as such."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) > 3:
        raise VolumeReadError(source, f"{len(shape)}D image of shape {list(shape)}, expected one 3D volume")
    if len(shape) < 3 or min(shape) < 2:
        raise VolumeReadError(source, f"2D image of shape {list(shape)}, expected a 3D volume")
    return shape


def check_voxel_count(source: str, shape: Sequence[int], max_voxels: int | None) -> None:
    """Refuse a header that claims more than ``max_voxels`` voxels (``None``: no limit), before any data read.

    A few KB of gzip can claim 10^9 voxels; reading it would allocate gigabytes before failing.
    """
    count = math.prod(int(s) for s in shape)
    if max_voxels is not None and count > max_voxels:
        raise VolumeReadError(
            source,
            f"header claims shape {[int(s) for s in shape]} = {count:,} voxels, "
            f"over the limit of {max_voxels:,} voxels (--max-voxels); not read",
        )


def special_file_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` is a link loop, a dangling link or not a regular file; ``None`` for files and folders.

    Uses ``stat`` only: opening a FIFO blocks until a writer appears, so it must never be opened.
    A missing path or a permission problem also gives ``None``: the reader names those.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop (following the links never reaches a file)"
        if os.path.islink(path) and err.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"dangling symbolic link (its target {os.readlink(os.fspath(path))!r} does not exist)"
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO), not a regular file: not opened"
    if stat.S_ISSOCK(mode):
        return "socket, not a regular file: not opened"
    return "device file, not a regular file: not opened"


def check_values(source: str, array: np.ndarray) -> None:
    """Reject volumes with NaN/Inf voxels or a single value everywhere."""
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - np.count_nonzero(finite))
        raise VolumeReadError(source, f"{bad} non-finite (NaN/Inf) voxels of {array.size}")
    lo, hi = float(array.min()), float(array.max())
    if lo == hi:
        raise VolumeReadError(source, f"constant image (every voxel = {lo:g})")


# --------------------------------------------------------------------------------------------- canonical
def _from_nifti_image(
    source: str, img: nib.spatialimages.SpatialImage, max_voxels: int | None = MAX_VOXELS
) -> Volume:
    """Reorient a nibabel image to RAS and return it as ``[D, H, W]`` float32."""
    shape_in = _check_shape(source, img.shape)
    check_voxel_count(source, img.shape, max_voxels)  # before as_closest_canonical, which loads the data
    if len(img.shape) == 4:
        img = img.slicer[..., 0]
    orientation_in = "".join(nib.aff2axcodes(img.affine))
    img = nib.as_closest_canonical(img)
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # truncated gzip, short file, bad scaling: all are "cannot read the data"
        raise VolumeReadError(source, f"cannot read voxel data ({type(err).__name__}: {err})") from None
    array = np.ascontiguousarray(data.transpose(2, 1, 0))
    check_values(source, array)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    meta = VolumeMeta(
        spacing=(zooms[2], zooms[1], zooms[0]),
        affine=np.asarray(img.affine, dtype=np.float64),
        orientation_in=orientation_in,
        shape_in=shape_in,
    )
    return Volume(source, array, meta)


def _read_nifti(path: Path, source: str, max_voxels: int | None) -> Volume:
    try:
        img = nib.load(str(path))  # the header only; the data is read by get_fdata
    except Exception as err:
        raise VolumeReadError(source, f"not a readable NIfTI file ({type(err).__name__}: {err})") from None
    if not isinstance(img, nib.spatialimages.SpatialImage):
        raise VolumeReadError(source, f"not a NIfTI image (nibabel reads a {type(img).__name__})")
    return _from_nifti_image(source, img, max_voxels)


def _sitk_to_nifti(source: str, image) -> nib.Nifti1Image:
    """SimpleITK image (LPS world, array [z, y, x]) -> nibabel image in RAS world."""
    import SimpleITK as sitk

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeReadError(source, f"{image.GetNumberOfComponentsPerPixel()}-component (e.g. RGB) image")
    size = image.GetSize()
    _check_shape(source, size)
    if image.GetDimension() == 4:
        image = image[:, :, :, 0]
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=np.float64)[None, :]
    lps[:3, 3] = image.GetOrigin()
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return nib.Nifti1Image(np.asarray(data, dtype=np.float32), _LPS_TO_RAS @ lps)


def _itk_reason(err: Exception, path: Path) -> str:
    """The ITK ERROR line of a SimpleITK exception, without the object address and the file name."""
    lines = [ln for ln in str(err).splitlines() if "ITK ERROR" in ln] or [
        str(err).strip() or type(err).__name__
    ]
    reason = lines[0].split("): ", 1)[-1].replace(f" {path}", "").replace(" for reading", "")
    return reason.strip().rstrip(":.") or type(err).__name__


def _read_itk(path: Path, source: str, max_voxels: int | None) -> Volume:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except Exception as err:
        raise VolumeReadError(source, f"not a readable image (ITK: {_itk_reason(err, path)})") from None
    if reader.GetNumberOfComponents() != 1:
        raise VolumeReadError(source, f"{reader.GetNumberOfComponents()}-component (e.g. RGB) image")
    check_voxel_count(source, reader.GetSize(), max_voxels)
    try:
        image = reader.Execute()
    except Exception as err:
        raise VolumeReadError(source, f"not a readable image (ITK: {_itk_reason(err, path)})") from None
    return _from_nifti_image(source, _sitk_to_nifti(source, image), max_voxels)


# --------------------------------------------------------------------------------------------- numpy
def _npy_claims(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` from the .npy headers of a .npy/.npz file, reading no data ([] if unparsable)."""
    fmt = np.lib.format

    def shape(fh) -> tuple[int, ...]:
        version = fmt.read_magic(fh)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        return tuple(read(fh)[0])

    try:
        if suffix_of(path) == ".npy":
            with path.open("rb") as fh:
                return [("", shape(fh))]
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if n.endswith(".npy"))
            claims = []
            for name in names:
                with zf.open(name) as member:
                    claims.append((name[: -len(".npy")], shape(member)))
            return claims
    except Exception:  # not a NumPy file: np.load gives the reason
        return []


def _numpy_arrays(path: Path, source: str, max_voxels: int | None) -> list[tuple[str, np.ndarray]]:
    """Image arrays of a .npy/.npz file as ``(name, array)``; arrays with ndim < 3 (labels) are ignored."""
    for key, shape in _npy_claims(path):
        check_voxel_count(f"{source}:{key}" if key else source, shape, max_voxels)
    try:
        loaded = np.load(str(path), allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = [(f"{source}:{k}", loaded[k]) for k in sorted(loaded.files)]
        else:
            arrays = [(source, loaded)]
    except Exception as err:
        raise VolumeReadError(source, f"not a readable NumPy file ({type(err).__name__}: {err})") from None
    images = [(name, a) for name, a in arrays if a.ndim >= 3]
    if not images:
        shapes = [list(a.shape) for _, a in arrays]
        raise VolumeReadError(source, f"no array with 3 or more dimensions (shapes {shapes})")
    return images


def _numpy_volumes(path: Path, source: str, max_voxels: int | None) -> list[Volume | VolumeReadError]:
    """A 3D array is one volume; ``[N, D, H, W]`` and ``[N, 1, D, H, W]`` stacks (MedMNIST-3D) are N volumes.

    NumPy files carry no geometry: the axes are taken as (D, H, W) already, spacing 1 mm.
    """
    out: list[Volume | VolumeReadError] = []
    for name, arr in _numpy_arrays(path, source, max_voxels):
        if arr.ndim == 5 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim == 3:
            stack, names = arr[None], [name]
        elif arr.ndim == 4:
            stack, names = arr, [f"{name}[{i}]" for i in range(arr.shape[0])]
        else:
            out.append(VolumeReadError(name, f"array of shape {list(arr.shape)} is not 3D or a stack of 3D"))
            continue
        for sub, vol in zip(names, stack, strict=True):
            out.append(_numpy_volume(sub, vol))
    return out


def _numpy_volume(source: str, vol: np.ndarray) -> Volume | VolumeReadError:
    if not (np.issubdtype(vol.dtype, np.number) or vol.dtype == np.bool_):
        return VolumeReadError(source, f"non-numeric array dtype {vol.dtype}")
    try:
        _check_shape(source, vol.shape)
        array = np.ascontiguousarray(vol, dtype=np.float32)
        check_values(source, array)
    except VolumeReadError as err:
        return err
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    meta = VolumeMeta((1.0, 1.0, 1.0), affine, "RAS", tuple(vol.shape), {"geometry": "unknown (NumPy)"})
    return Volume(source, array, meta)


# --------------------------------------------------------------------------------------------- DICOM
def dicom_series(folder: str | os.PathLike) -> dict[str, list[str]]:
    """Series found directly in ``folder``: ``{series_uid: [files sorted by slice position]}``."""
    folder = str(folder)
    names, pure = _distinct_files(folder)
    if pure:
        return _gdcm_series(folder)
    # GDCM scans the folder itself: a FIFO in it silently drops slices, a link to a slice makes a duplicate
    # position. Scan a folder of links to the distinct regular files instead and map the names back.
    with tempfile.TemporaryDirectory(prefix=".medgan3d-dicom-") as view:
        for name in names:
            os.symlink(os.path.abspath(os.path.join(folder, name)), os.path.join(view, name))
        series = _gdcm_series(view)
    return {uid: [os.path.join(folder, os.path.basename(f)) for f in files] for uid, files in series.items()}


def _distinct_files(folder: str) -> tuple[list[str], bool]:
    """Names of the regular files in ``folder``, one per inode (a real file before a link to it), and
    whether the folder holds nothing else besides subfolders."""
    keep: list[str] = []
    seen: set[tuple[int, int]] = set()
    pure = True
    for name in sorted(os.listdir(folder), key=lambda n: (os.path.islink(os.path.join(folder, n)), n)):
        full = os.path.join(folder, name)
        try:
            st = None if special_file_reason(full) else os.stat(full)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            continue
        if st is None or (st.st_dev, st.st_ino) in seen:
            pure = False
            continue
        seen.add((st.st_dev, st.st_ino))
        keep.append(name)
    return sorted(keep), pure


def _gdcm_series(folder: str) -> dict[str, list[str]]:
    import SimpleITK as sitk

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    return {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in ids}


def _slice_info(path: str) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """(rows/cols size, position, row/col direction cosines) of one DICOM file, header only."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    size = reader.GetSize()[:2]
    pos = np.asarray(reader.GetOrigin(), dtype=np.float64)
    direction = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(3, 3)
    return size, pos, direction


def _frames(path: str) -> int:
    """Number of frames (slices) in one DICOM file, header only; 1 for an ordinary slice."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except Exception:
        return 1
    size = reader.GetSize()
    return int(size[2]) if len(size) > 2 else 1


def check_dicom_series(source: str, files: Sequence[str]) -> tuple[int, int]:
    """Raise on a series that would make a wrong volume: one slice, mixed sizes, duplicate/missing slices.

    Returns the (columns, rows) size of its slices.
    """
    if len(files) < 2:
        raise VolumeReadError(source, f"DICOM series with {len(files)} slice: a 2D image, not a volume")
    infos = [_slice_info(f) for f in files]
    sizes = sorted({info[0] for info in infos})
    if len(sizes) > 1:
        raise VolumeReadError(source, f"DICOM series with mixed slice sizes {[list(s) for s in sizes]}")
    normal = infos[0][2][:, 2]
    z = np.sort(np.array([float(info[1] @ normal) for info in infos]))
    gaps = np.diff(z)
    tol = 1e-3 * max(float(np.median(np.abs(gaps))), 1e-3)
    dups = int(np.count_nonzero(np.abs(gaps) <= tol))
    if dups:
        raise VolumeReadError(source, f"DICOM series with {dups} duplicate slice position(s)")
    step = float(np.min(gaps))
    worst = int(np.argmax(gaps))
    if gaps[worst] > 1.5 * step:
        missing = round(gaps[worst] / step) - 1
        raise VolumeReadError(
            source,
            f"DICOM series with missing slices: gap of {gaps[worst]:.3g} mm after z={z[worst]:.4g} mm "
            f"where slices are {step:.3g} mm apart (~{missing} missing)",
        )
    return sizes[0]


def read_dicom_series(files: Sequence[str], source: str, max_voxels: int | None = MAX_VOXELS) -> Volume:
    """Read one DICOM series (its files) after :func:`check_dicom_series`."""
    import SimpleITK as sitk

    if len(files) == 1 and _frames(files[0]) >= 2:
        return _read_itk(Path(files[0]), source, max_voxels)  # one multi-frame file holds the whole volume
    size = check_dicom_series(source, files)
    check_voxel_count(source, (*size, len(files)), max_voxels)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(files))
    try:
        image = reader.Execute()
    except Exception as err:
        raise VolumeReadError(source, f"cannot read DICOM series ({str(err).strip()[-200:]})") from None
    return _from_nifti_image(source, _sitk_to_nifti(source, image), max_voxels)


# --------------------------------------------------------------------------------------------- public
def read_volumes(
    path: str | os.PathLike, source: str | None = None, *, max_voxels: int | None = MAX_VOXELS
) -> list[Volume | VolumeReadError]:
    """Every volume in ``path`` (a file, or a folder holding DICOM series), each read or with its error.

    A header that claims more than ``max_voxels`` voxels per volume (``None``: no limit) is refused unread.
    """
    path = Path(path)
    source = source or str(path)
    try:
        special = special_file_reason(path)
        if special:
            return [VolumeReadError(source, special)]
        if path.is_dir():
            series = dicom_series(path)
            if not series:
                return [VolumeReadError(source, "folder holds no DICOM series")]
            return [
                _safe(lambda f=f, u=u: read_dicom_series(f, f"{source}#{u}", max_voxels))
                for u, f in series.items()
            ]
        if not os.access(path, os.R_OK):
            reason = "no such file" if not path.exists() else "permission denied"
            return [VolumeReadError(source, f"cannot read: {reason}")]
        if path.stat().st_size == 0:
            return [VolumeReadError(source, "empty file (0 bytes)")]
        suffix = suffix_of(path)
        if suffix in NUMPY_SUFFIXES:
            return _numpy_volumes(path, source, max_voxels)
        if suffix in NIFTI_SUFFIXES:
            return [_safe(lambda: _read_nifti(path, source, max_voxels))]
        if suffix in ITK_SUFFIXES or suffix in DICOM_SUFFIXES:
            return [_safe(lambda: _read_itk(path, source, max_voxels))]
        return [VolumeReadError(source, f"unsupported file type {suffix or '(no suffix)'!r}")]
    except VolumeReadError as err:
        return [err]
    except OSError as err:
        return [VolumeReadError(source, f"cannot read: {err.strerror or err}")]


def _safe(fn) -> Volume | VolumeReadError:
    try:
        return fn()
    except VolumeReadError as err:
        return err


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, VolumeMeta]:
    """Read one 3D volume as ``(array [D, H, W] float32 in RAS, meta)``; raise VolumeReadError otherwise."""
    results = read_volumes(path)
    if len(results) != 1:
        raise VolumeReadError(str(path), f"holds {len(results)} volumes; use read_volumes()")
    if isinstance(results[0], VolumeReadError):
        raise results[0]
    return results[0].array, results[0].meta


def spacing_affine(spacing: Sequence[float], shape: Sequence[int] | None = None) -> np.ndarray:
    """RAS affine for spacing ``(d, h, w)``; with ``shape`` the volume is centred on the origin."""
    sd, sh, sw = (float(s) for s in spacing)
    affine = np.diag([sw, sh, sd, 1.0])
    if shape is not None:
        d, h, w = shape[-3:]
        affine[:3, 3] = -0.5 * np.array([(w - 1) * sw, (h - 1) * sh, (d - 1) * sd])
    return affine


def write_nifti(
    path: str | os.PathLike,
    volume: np.ndarray,
    *,
    affine: np.ndarray | Sequence | None = None,
    spacing: Sequence[float] | None = None,
    dtype: type | str | None = None,
    descrip: str | None = None,
    cal: tuple[float, float] | None = None,
) -> Path:
    """Write ``volume`` ``[D, H, W]`` (or ``[1, D, H, W]``, numpy or torch) in RAS as NIfTI.

    Give ``affine`` (NIfTI affine for index (w, h, d), as in :class:`VolumeMeta`) or ``spacing`` (d, h, w);
    with neither the spacing is 1 mm. The array is written in (w, h, d) order so any viewer shows the scan
    where the affine says it is. ``descrip``: the header's 80-byte description; ``cal``: its display range
    (``cal_min``, ``cal_max``).
    """
    array = volume.detach().cpu().numpy() if hasattr(volume, "detach") else np.asarray(volume)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"{path}: write_nifti expects [D, H, W] or [1, D, H, W], got {list(array.shape)}")
    if affine is None:
        affine = spacing_affine(spacing if spacing is not None else (1.0, 1.0, 1.0))
    affine = np.asarray(affine, dtype=np.float64)
    data = array.transpose(2, 1, 0).astype(dtype or (np.float32 if array.dtype.kind == "f" else array.dtype))
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if descrip is not None:
        img.header["descrip"] = descrip.encode("ascii", "replace")[:80]
    if cal is not None:
        img.header["cal_min"], img.header["cal_max"] = cal
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path
