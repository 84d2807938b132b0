"""Embedded offline datasets: a brain MRI population and a CTCA-like cardiac CT phantom.

Both are seeded (subject ``i`` of seed ``s`` is the same whatever ``n`` is), need no download, and are
written as raw NIfTI scans that then go through the ordinary ``prepare`` path: the brain through the
``adni`` preset, the heart (in Hounsfield units, stored LPS like scanner exports) through ``coca`` exactly
as real CT would (Liu et al., arXiv 2208.03934 §4.2.1).
"""

from __future__ import annotations

import functools
import importlib.util
import multiprocessing as mp
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates, zoom

from medgan3d.data.io import write_nifti
from medgan3d.data.prepare import prepare_dataset
from medgan3d.data.preprocess import get_preset
from medgan3d.fs import umask_temp_dir

MNI_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


# --------------------------------------------------------------------------------------------- brain
def mni_template_path() -> Path:
    """Path of the MNI152 2009a T1 template inside the installed nilearn package (no download)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "nilearn is not installed; it ships the MNI152 template used by brain-phantom"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / MNI_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MNI152 template missing from the nilearn package")
    return path


@functools.lru_cache(maxsize=4)
def _brain_template(grid: int) -> tuple[np.ndarray, float]:
    """Skull-stripped MNI T1 cropped to the brain, resampled so its longest side is ``grid`` voxels.

    Returns the canonical ``[D, H, W]`` array (max 1) and the isotropic spacing in mm.
    """
    img = nib.as_closest_canonical(nib.load(str(mni_template_path())))
    data = np.asarray(img.get_fdata(dtype=np.float32)).transpose(2, 1, 0)  # (x, y, z) -> (D, H, W)
    idx = np.argwhere(data > 0)
    lo = np.maximum(idx.min(0) - 4, 0)
    hi = np.minimum(idx.max(0) + 5, data.shape)
    data = data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    factor = grid / max(data.shape)
    small = zoom(gaussian_filter(data, 0.5 / factor), factor, order=1, grid_mode=True, mode="grid-constant")
    return np.clip(small, 0, None) / small.max(), float(img.header.get_zooms()[0]) / factor


def _smooth_field(
    rng: np.random.Generator, shape: Sequence[int], coarse: int, amplitude: float
) -> np.ndarray:
    """A random smooth field: Gaussian noise on a ``coarse``³ grid, cubic-upsampled to ``shape``."""
    field = rng.standard_normal((coarse,) * 3).astype(np.float32) * amplitude
    return zoom(field, [s / coarse for s in shape], order=3, grid_mode=True, mode="nearest")[
        : shape[0], : shape[1], : shape[2]
    ]


# Class 1 of the labelled brain phantom: enlarged lateral ventricles (as in atrophy), a CSF-dark ellipsoid
# around the template's ventricles, semi-axes as fractions of the brain's extent (D, H, W).
VENTRICLE_CENTRE = (0.56, 0.50, 0.50)
VENTRICLE_AXES = (0.13, 0.22, 0.15)
VENTRICLE_CSF = 0.12  # of the template's maximum (white matter ~1)
# Class 1 of the labelled heart phantom: a thicker myocardium (hypertrophy), this much added to the wall.
HYPERTROPHY_MM = 7.0
PHANTOM_CLASSES = {"brain": ("normal", "enlarged ventricles"), "heart": ("normal wall", "thick wall")}


def ventricle_mask(shape: Sequence[int]) -> np.ndarray:
    """Where class 1 of the labelled brain phantom has CSF: the ellipsoid of ``VENTRICLE_*`` in ``shape``."""
    idx = np.indices(shape, dtype=np.float32)
    r = sum(((idx[a] / (shape[a] - 1) - VENTRICLE_CENTRE[a]) / VENTRICLE_AXES[a]) ** 2 for a in range(3))
    return r <= 1


def brain_phantom(
    rng: np.random.Generator, grid: int = 96, label: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One brain MRI subject: ``([D, H, W] float32 arbitrary units, RAS affine)``.

    Varies per subject: global size (±8% per axis) and rotation (±4°), a smooth elastic deformation
    (~3 mm), a multiplicative bias field (intensity non-uniformity, ~±15%), Rician noise (2–5% of white
    matter) and the scanner gain (arbitrary MRI scale). ``label`` 1 enlarges the ventricles (CSF fills
    :func:`ventricle_mask` before the subject's deformation); ``None`` and 0 are the same subject.
    """
    tmpl, spacing = _brain_template(grid)
    if label == 1:
        tmpl = np.where(ventricle_mask(tmpl.shape), np.minimum(tmpl, VENTRICLE_CSF), tmpl).astype(tmpl.dtype)
    shape = tmpl.shape
    centre = (np.asarray(shape) - 1) / 2
    angles = np.deg2rad(rng.uniform(-4, 4, 3))
    matrix = _rotation(*angles) @ np.diag(1.0 / rng.uniform(0.92, 1.08, 3))
    grid_idx = np.indices(shape, dtype=np.float32).reshape(3, -1) - centre[:, None]
    coords = (matrix @ grid_idx).reshape(3, *shape) + centre[:, None, None, None]
    coords += rng.uniform(-1.5, 1.5, 3)[:, None, None, None]
    amp = 3.0 / spacing  # ~3 mm displacements
    for axis in range(3):
        coords[axis] += _smooth_field(rng, shape, 5, amp)
    brain = map_coordinates(tmpl, coords, order=1, mode="constant", cval=0.0)
    bias = np.exp(_smooth_field(rng, shape, 3, 0.12))
    sigma = rng.uniform(0.02, 0.05)
    noisy = np.hypot(brain * bias + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape))
    gain = rng.uniform(300, 1200)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -0.5 * spacing * (np.asarray(shape[::-1]) - 1)
    return (noisy * gain).astype(np.float32), affine


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


# --------------------------------------------------------------------------------------------- heart
class _Scene:
    """World coordinates (RAS mm) of every voxel of a CT grid, and a painter for HU values."""

    def __init__(self, shape_xyz: tuple[int, int, int], spacing: tuple[float, float, float], z0: float):
        nx, ny, nz = shape_xyz
        sx, sy, sz = spacing
        self.x = ((np.arange(nx) - (nx - 1) / 2) * sx).astype(np.float32)[:, None, None]
        self.y = ((np.arange(ny) - (ny - 1) / 2) * sy).astype(np.float32)[None, :, None]
        self.z = (z0 + np.arange(nz) * sz).astype(np.float32)[None, None, :]
        self.hu = np.full(shape_xyz, -1000.0, dtype=np.float32)
        self.spacing = spacing

    def local(self, centre: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, ...]:
        """Coordinates in a frame centred at ``centre`` with axes the columns of ``rot``."""
        dx, dy, dz = self.x - centre[0], self.y - centre[1], self.z - centre[2]
        return tuple(rot[0, k] * dx + rot[1, k] * dy + rot[2, k] * dz for k in range(3))

    def ellipsoid(
        self, centre: np.ndarray | Sequence[float], rot: np.ndarray, axes: np.ndarray | Sequence[float]
    ) -> np.ndarray:
        u, v, w = self.local(np.asarray(centre), rot)
        return (u / axes[0]) ** 2 + (v / axes[1]) ** 2 + (w / axes[2]) ** 2 <= 1.0

    def cylinder_z(self, cx: float, cy: float, r: float, zmin: float = -1e9, zmax: float = 1e9) -> np.ndarray:
        inside = (self.x - cx) ** 2 + (self.y - cy) ** 2 <= r * r
        return inside & (self.z >= zmin) & (self.z <= zmax)

    def tube(self, points: np.ndarray, radius: float, value: float) -> None:
        """Paint spheres of ``radius`` along ``points`` (world mm): vessels and calcifications."""
        sx, sy, sz = self.spacing
        nx, ny, nz = self.hu.shape
        origin = np.array([self.x[0, 0, 0], self.y[0, 0, 0], self.z[0, 0, 0]])
        step = np.array([sx, sy, sz])
        reach = np.ceil(radius / step).astype(int) + 1
        for p in points:
            c = np.round((p - origin) / step).astype(int)
            lo, hi = np.maximum(c - reach, 0), np.minimum(c + reach + 1, [nx, ny, nz])
            if np.any(hi <= lo):
                continue
            xs, ys, zs = (origin[k] + np.arange(lo[k], hi[k]) * step[k] for k in range(3))
            d2 = (
                (xs[:, None, None] - p[0]) ** 2
                + (ys[None, :, None] - p[1]) ** 2
                + (zs[None, None, :] - p[2]) ** 2
            )
            box = self.hu[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            box[d2 <= radius * radius] = value


def _heart_frame(rng: np.random.Generator) -> np.ndarray:
    """Columns: short axes and the long axis of the heart, base→apex pointing left, anterior, inferior."""
    apex = np.array([-0.55, 0.5, -0.65]) + rng.normal(0, 0.12, 3)
    e3 = apex / np.linalg.norm(apex)
    e1 = np.cross(e3, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    return np.stack([e1, e2, e3], axis=1)


def _surface_curve(centre, rot, axes, theta, phi) -> np.ndarray:
    """Points on an ellipsoid (local spherical angles about the long axis) in world mm."""
    local = np.stack(
        [
            axes[0] * np.sin(theta) * np.cos(phi),
            axes[1] * np.sin(theta) * np.sin(phi),
            axes[2] * np.cos(theta),
        ],
        axis=1,
    )
    return np.asarray(centre) + local @ rot.T


def heart_phantom(
    rng: np.random.Generator, inplane: int = 128, slices: tuple[int, int] = (24, 72), label: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One CTCA-like scan in HU: ``([D, H, W] int16 canonical, LPS affine for the (x, y, z) file layout)``.

    The array returned is in the *file* layout (x, y, z) with an LPS affine, i.e. what a DICOM-to-NIfTI
    converter writes; ``read_volume`` reorients it. See :func:`_paint_heart` for what varies. ``label`` 1
    thickens the myocardium by ``HYPERTROPHY_MM`` (a smaller left-ventricular blood pool); ``None`` and 0 are
    the same subject.
    """
    fov = rng.uniform(180, 230)
    n_slices = int(rng.integers(slices[0], slices[1] + 1))
    thickness = float(rng.choice([2.5, 3.0]))
    spacing = (fov / inplane, fov / inplane, thickness)
    z_top = rng.uniform(40, 70)  # the scan starts above the heart base and runs caudally
    scene = _Scene((inplane, inplane, n_slices), spacing, z_top - (n_slices - 1) * thickness)
    _paint_heart(scene, rng, HYPERTROPHY_MM if label == 1 else 0.0)
    hu = gaussian_filter(scene.hu, (0.6, 0.6, 0.4)) + rng.normal(0, rng.uniform(12, 30), scene.hu.shape)
    data = np.clip(np.round(hu), -1024, 3071).astype(np.int16)[::-1, ::-1, :]  # RAS -> LPS file layout
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [float(scene.x[-1, 0, 0]), float(scene.y[0, -1, 0]), float(scene.z[0, 0, 0])]
    return data, affine


def _paint_heart(scene: _Scene, rng: np.random.Generator, extra_wall: float = 0.0) -> None:
    """Body, lungs, heart (myocardium, contrast chambers), aorta, spine, sternum, coronaries, calcium.

    Random per subject: body and lung size, heart size/position/orientation, wall thickness, contrast
    enhancement, aortic radii, spine position, coronary paths and whether/where calcifications occur.
    """
    a, b = rng.uniform(140, 180), rng.uniform(95, 125)
    body = ((scene.x / a) ** 2 + (scene.y / b) ** 2) <= 1
    inner = ((scene.x / (a - 15)) ** 2 + (scene.y / (b - 15)) ** 2) <= 1
    scene.hu[np.broadcast_to(body, scene.hu.shape)] = rng.uniform(-110, -80)
    scene.hu[np.broadcast_to(inner, scene.hu.shape)] = rng.uniform(30, 50)
    lung_w, lung_h = rng.uniform(45, 60), rng.uniform(60, 80)
    for side in (-1, 1):
        lung = ((scene.x - side * (a * 0.45)) / lung_w) ** 2 + ((scene.y + 5) / lung_h) ** 2 <= 1
        region = np.broadcast_to(lung, scene.hu.shape)
        scene.hu[region] = -850 + rng.normal(0, 40, int(region.sum()))
    contrast = rng.uniform(250, 450)
    rot = _heart_frame(rng)
    size = rng.uniform(0.85, 1.15)
    centre = np.array([-15, 25, -20]) + rng.normal(0, 6, 3)
    outer = np.array([48, 44, 62]) * size
    scene.hu[scene.ellipsoid(centre, rot, outer + 6)] = -80  # epicardial fat
    scene.hu[scene.ellipsoid(centre, rot, outer)] = rng.uniform(40, 80)  # myocardium
    wall = rng.uniform(8, 13) + extra_wall
    lv_c = centre + rot @ np.array([10, -6, 6]) * size
    scene.hu[scene.ellipsoid(lv_c, rot, np.array([30, 28, 48]) * size - wall)] = contrast
    rv_c = centre + rot @ np.array([-22, 14, 0]) * size
    scene.hu[scene.ellipsoid(rv_c, rot, np.array([14, 26, 42]) * size)] = contrast * rng.uniform(0.7, 1.0)
    for off, r in (([12, -14, -48], 22), ([-22, 0, -44], 21)):  # left and right atria at the base
        atrium = centre + rot @ np.array(off) * size
        scene.hu[scene.ellipsoid(atrium, np.eye(3), [r * size] * 3)] = contrast
    _paint_vessels_and_bone(scene, rng, centre, rot, outer, contrast, b)


def _paint_vessels_and_bone(scene, rng, centre, rot, outer, contrast, body_b) -> None:
    base = centre - rot[:, 2] * outer[2] * 0.8
    asc_r, desc_r = rng.uniform(13, 18), rng.uniform(10, 13)
    scene.hu[scene.cylinder_z(base[0] + 15, base[1] + 5, asc_r, zmin=base[2])] = contrast
    spine_y = -body_b + rng.uniform(30, 40)
    spine_x = rng.normal(0, 4)
    scene.hu[scene.cylinder_z(spine_x - 28, spine_y + 22, desc_r)] = contrast
    scene.hu[scene.cylinder_z(spine_x, spine_y, 18)] = rng.uniform(650, 900)  # cortical shell
    scene.hu[scene.cylinder_z(spine_x, spine_y, 16)] = rng.uniform(180, 300)  # cancellous bone
    scene.hu[scene.cylinder_z(spine_x, spine_y - 26, 8)] = 20  # spinal canal
    sternum = (((scene.x - rng.normal(0, 3)) / 14) ** 2 + ((scene.y - body_b + 22) / 7) ** 2) <= 1
    scene.hu[np.broadcast_to(sternum, scene.hu.shape)] = rng.uniform(300, 500)
    surface = outer * 1.06
    t = np.linspace(0.35, 2.7, 90)
    phi_lad = rng.uniform(1.2, 1.9)
    paths = [
        _surface_curve(centre, rot, surface, t, phi_lad + 0.15 * np.sin(3 * t)),  # LAD
        _surface_curve(centre, rot, surface, np.full(70, 0.95), np.linspace(-0.2, -1.8, 70)),  # LCx
        _surface_curve(centre, rot, surface, np.full(90, 1.0), np.linspace(2.2, 4.4, 90)),  # RCA
    ]
    for path in paths:
        scene.tube(path, rng.uniform(1.5, 2.2), contrast)
    if rng.random() < 0.5:  # calcified plaques on some subjects, like the COCA cohort
        for _ in range(int(rng.integers(1, 5))):
            path = paths[int(rng.integers(len(paths)))]
            point = path[int(rng.integers(len(path) // 2))]
            scene.tube(point[None], rng.uniform(1.0, 2.5), rng.uniform(400, 1000))


# --------------------------------------------------------------------------------------------- datasets
def phantom_label(i: int) -> int:
    """The class of subject ``i`` of a labelled phantom population: alternating, so any n is balanced."""
    return i % 2


def _brain_job(args: tuple[int, int, int, str, bool]) -> str:
    seed, i, grid, folder, labelled = args
    label = phantom_label(i) if labelled else None
    array, affine = brain_phantom(np.random.default_rng([seed, i]), grid, label)
    return str(write_nifti(Path(folder) / f"brain_{i:05d}.nii.gz", array, affine=affine))


def _heart_job(args: tuple[int, int, int, str, bool]) -> str:
    seed, i, inplane, folder, labelled = args
    label = phantom_label(i) if labelled else None
    data, affine = heart_phantom(np.random.default_rng([seed, i]), inplane, label=label)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    path = Path(folder) / f"heart_{i:05d}.nii.gz"
    nib.save(img, str(path))
    return str(path)


def _run_jobs(job: Callable, tasks: list, workers: int, progress: Callable[[int, int], None] | None) -> None:
    if workers > 1 and len(tasks) > 1:
        with mp.get_context("spawn").Pool(min(workers, len(tasks))) as pool:
            for done, _ in enumerate(pool.imap(job, tasks), start=1):
                if progress:
                    progress(done, len(tasks))
        return
    for done, task in enumerate(tasks, start=1):
        job(task)
        if progress:
            progress(done, len(tasks))


def _make(
    job, n, out_dir, seed, size, cfg, workers, raw_dir, progress, prepare_kw, labelled=False, kind=""
) -> dict:
    if n < 1:
        raise ValueError(f"need at least one subject, got n={n}")
    out_dir = Path(out_dir)
    keep = raw_dir is not None
    folder = Path(raw_dir) if keep else umask_temp_dir(_parent(out_dir), f".{out_dir.name}.raw-")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        tasks = [(seed, i, size, str(folder), labelled) for i in range(n)]
        _run_jobs(job, tasks, workers, progress and (lambda d, t: progress("generate", d, t)))
        if labelled:
            prepare_kw = prepare_kw | {"labels": _write_labels_csv(folder, kind, n)}
        return prepare_dataset(
            folder,
            out_dir,
            cfg,
            workers=workers,
            progress=progress and (lambda d, t: progress("prepare", d, t)),
            **prepare_kw,
        )
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _write_labels_csv(folder: Path, kind: str, n: int) -> Path:
    """``labels.csv`` of a labelled phantom population (``file,label``; comments name the classes)."""
    names = PHANTOM_CLASSES[kind]
    lines = [f"# {kind} phantom classes: 0 = {names[0]}, 1 = {names[1]}", "file,label"]
    lines += [f"{kind}_{i:05d}.nii.gz,{phantom_label(i)}" for i in range(n)]
    path = folder / "labels.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _parent(path: Path) -> Path:
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    return path.absolute().parent


def make_brain_phantoms(
    n: int,
    out_dir: str | os.PathLike,
    seed: int = 0,
    shape: Sequence[int] = (64, 64, 64),
    *,
    workers: int = 1,
    raw_dir: str | os.PathLike | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    labelled: bool = False,
    **prepare_kw,
) -> dict:
    """Generate ``n`` brain subjects and prepare them with the ``adni`` preset into ``out_dir``.

    The raw scans are made at about 1.5× the target size (≥ 24 voxels) so the preset really downsamples;
    they are kept in ``raw_dir`` if given. Returns the prepare report. ``labelled``: two classes, alternating
    by subject (0 normal, 1 enlarged ventricles), written to ``labels.csv`` and prepared with it.
    """
    grid = max(24, round(1.5 * max(shape)))
    cfg = get_preset("adni", shape=tuple(int(s) for s in shape))
    return _make(
        _brain_job, n, out_dir, seed, grid, cfg, workers, raw_dir, progress, prepare_kw, labelled, "brain"
    )


def make_heart_phantoms(
    n: int,
    out_dir: str | os.PathLike,
    seed: int = 0,
    shape: Sequence[int] = (32, 64, 64),
    *,
    inplane: int = 128,
    crop: str = "center",
    workers: int = 1,
    raw_dir: str | os.PathLike | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    labelled: bool = False,
    **prepare_kw,
) -> dict:
    """Generate ``n`` cardiac CT scans in HU (``inplane``² pixels, 24–72 slices); prepare them with ``coca``.

    Returns the prepare report; raw NIfTI scans are kept in ``raw_dir`` if given. ``labelled``: two classes,
    alternating by subject (0 normal wall, 1 a wall ``HYPERTROPHY_MM`` thicker), written to ``labels.csv``.
    """
    cfg = get_preset("coca", shape=tuple(int(s) for s in shape), crop=crop, seed=seed)
    return _make(
        _heart_job, n, out_dir, seed, inplane, cfg, workers, raw_dir, progress, prepare_kw, labelled, "heart"
    )
