"""What projection does the same way for every family: targets read as the run's dataset was, scores, files."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from medgan3d.data.manifest import Manifest
from medgan3d.fs import atomic_write

if TYPE_CHECKING:
    from medgan3d.generate import SyntheticInfo


@dataclass
class Target:
    """One volume to project: ``[D, H, W]`` in [-1, 1], its preprocessing record and an output folder name."""

    name: str
    source: str
    volume: np.ndarray
    info: dict[str, Any]
    unit: str = ""


def read_scan(path: Path, manifest: Manifest) -> tuple[np.ndarray, dict[str, Any]]:
    """One scan, read and preprocessed with the run's dataset preset: ``([D, H, W] in [-1, 1], item info)``."""
    from medgan3d.data import preprocess, read_volume

    array, meta = read_volume(path)
    return preprocess(array, meta, manifest.preset, str(path))


def reconstruction_metrics(rec: Tensor, target: Tensor) -> dict[str, float]:
    """MSE, PSNR (data range 2 of [-1, 1]) and single-scale 3D SSIM of a reconstruction against its target.

    SSIM is the mean SSIM map in [-1, 1], negative values kept (``ms_ssim`` clips them to 0 for its powers)."""
    from medgan3d.metrics.msssim import msssim_config, ssim_components
    from medgan3d.metrics.psnr import psnr_from_mse

    mse = float(F.mse_loss(rec.double(), target.double()))
    cfg = msssim_config(rec.shape[2:], max_scales=1)
    ssim = float(ssim_components(rec.double(), target.double(), cfg)[0][0])
    return {"mse": mse, "psnr_db": float(psnr_from_mse(np.asarray([mse]))[0]), "ssim": ssim}


def reconstruction_info(
    checkpoint: str | os.PathLike[str], lo: float, hi: float, unit: str, scan: str, label: str
) -> SyntheticInfo:
    """How a projection's reconstruction is marked synthetic (NIfTI ``descrip`` and JSON sidecar, as
    ``generate`` marks its samples): tool ``project``, the run, checkpoint and kimg it came from, the projected
    scan, and the scan's own window as units. Values are written as rendered (not clipped: the files are the
    volumes that metrics.json scores), which the sidecar records."""
    from medgan3d.generate import SyntheticInfo, source_info
    from medgan3d.training.checkpoint import CKPT_PREFIX
    from medgan3d.viz import IntensityWindow

    ckpt = Path(checkpoint)
    origin = source_info(ckpt, ckpt if ckpt.name.startswith(CKPT_PREFIX) else None)
    window = IntensityWindow(float(lo), float(hi), unit or "a.u.", "window")
    return SyntheticInfo(
        origin["run"],
        origin["family"],
        window,
        False,
        "project",
        origin["checkpoint"],
        origin["kimg"],
        label=label,
        extra={"projected_scan": scan},
    )


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def safe_name(text: str) -> str:
    """A folder name from a scan or item name: letters, digits, ``.-_`` kept, the rest as ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "scan"


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` with repeats suffixed ``-2``, ``-3``… (two scans called ``t1.nii.gz`` in two folders)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def scan_names(scans: Sequence[os.PathLike[str] | str]) -> list[str]:
    """Output folder per scan: its file name without the extensions, made unique."""
    return unique_names([safe_name(Path(s).name.split(".")[0] or Path(s).name) for s in scans])


def scan_targets(scans: Sequence[Path], manifest: Manifest) -> Iterator[Target]:
    """Scans read and preprocessed one at a time (a batch of large scans never sits in memory at once)."""
    unit = manifest.intensity.unit
    for scan, name in zip(scans, scan_names(scans), strict=True):
        array, info = read_scan(Path(scan), manifest)
        yield Target(name, str(scan), array, info, unit)


def dataset_targets(
    data: str | os.PathLike[str], split: str | None = None, limit: int | None = None
) -> tuple[list[Target], Manifest]:
    """The volumes of a prepared dataset's ``split`` (all with None), first ``limit`` of them, and its manifest."""
    manifest = Manifest.load(data)
    if split is not None and split not in manifest.splits:
        raise ValueError(f"--split must be one of {sorted(manifest.splits)}, got {split!r}")
    rows = manifest.indices("all" if split is None else split)
    rows = rows[:limit] if limit is not None else rows
    if not rows:
        raise ValueError(f"{data}: no volumes in split {split!r}")
    volumes = manifest.open_array()
    targets = []
    for i in rows:
        item = manifest.items[i]
        name = safe_name(f"{i:04d}-{Path(item.source).name.split('.')[0]}")
        volume = np.asarray(volumes[i, 0], dtype=np.float32)
        targets.append(Target(name, item.source, volume, dataclasses.asdict(item), manifest.intensity.unit))
    return targets, manifest
