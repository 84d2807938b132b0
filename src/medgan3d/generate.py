"""Sampling trained generators to NIfTI volumes with the data's geometry and units."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from medgan3d.modeling import atomic_write
from medgan3d.sampling import DEFAULT_CHUNK_DEPTH
from medgan3d.training.checkpoint import is_network_dir, load_generator, run_dir_of
from medgan3d.training.observe import generated_volumes
from medgan3d.viz import save_slice_grid


def find_manifest(
    source: str | os.PathLike[str], data: str | os.PathLike[str] | None
) -> dict[str, Any] | None:
    """The dataset manifest: ``--data``'s, else the copy a run keeps beside its checkpoints."""
    candidates = [Path(data) / "dataset.json"] if data is not None else []
    source = Path(source)
    if not is_network_dir(source):  # a run folder or a checkpoint in one: no need to verify it here
        candidates += [run_dir_of(source) / "dataset.json"]
    for path in candidates:
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if data is not None:
        raise FileNotFoundError(f"{data}: no dataset.json (not a prepared dataset)")
    return None


def sample_to_nifti(
    source: str | os.PathLike[str],
    seeds: list[int],
    out: str | os.PathLike[str],
    psi: float = 1.0,
    data: str | os.PathLike[str] | None = None,
    raw: bool = False,
    chunk_depth: int | None = DEFAULT_CHUNK_DEPTH,
) -> list[Path]:
    """Write ``seed%04d.nii.gz`` for every seed and ``preview.png``: G_ema of the latest intact checkpoint for
    StyleGAN2 runs, G for families without an EMA (HA-GAN, decoded at full resolution in slabs of
    ``chunk_depth`` latent slices; 0/None: the whole volume at once, the same values with more memory).

    With a manifest (from ``data`` or the run) volumes get the dataset's spacing and affine and are mapped
    back to its units (Hounsfield units for CT presets); otherwise (or with ``raw``) they stay in [-1, 1]
    with 1 mm voxels. Each file is written under a temp name and renamed.
    """
    from medgan3d.data import denormalize, write_nifti

    G = load_generator(source).eval()
    if G.spatial_dims != 3:
        raise ValueError(f"{source}: a {G.spatial_dims}D generator; generate writes 3D volumes")
    manifest = find_manifest(source, data)
    affine = None if manifest is None else np.asarray(manifest["affine"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    previews: list[np.ndarray] = []
    for s in seeds:
        vol = generated_volumes(G, 1, seed=s, psi=psi, chunk_depth=chunk_depth)[0]
        previews.append(vol)
        values = (vol if raw or manifest is None else np.asarray(denormalize(vol, manifest))).astype(
            np.float32
        )
        path = out / f"seed{s:04d}.nii.gz"
        atomic_write(path, lambda p, v=values: write_nifti(p, v, affine=affine))
        written.append(path)
    spacing = manifest["spacing"] if manifest is not None else (1.0, 1.0, 1.0)
    save_slice_grid(
        previews[:8], out / "preview.png", spacing=spacing, titles=[f"seed {s}" for s in seeds[:8]]
    )
    return written
