"""Style mixing grids for 3D StyleGAN2 generators: rows give the base ws, columns replace a band of layers.

Karras et al., "A Style-Based Generator Architecture for Generative Adversarial Networks" (CVPR 2019), §3.1 and
Fig. 3 (coarse, middle and fine styles copied from a second source); Hong et al., 3D-StyleGAN (DGM4MICCAI
2021, Fig. "Style mixing") on brain MRI. Unlike the published 3D script, the bands come from the model's
stage list (:func:`medgan3d.latents.style_bands`), the noise is the generator's constant maps unless asked
otherwise, every cell is a float NIfTI in the dataset's units and geometry, and projected scans
(``projected.npz`` from ``medgan3d project``) can be rows or columns.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from medgan3d.fs import atomic_write
from medgan3d.latents import (
    Geometry,
    Latent,
    describe_styles,
    latent_noise,
    load_stylegan,
    parse_latents,
    parse_styles,
    render,
    w_layers,
)

if TYPE_CHECKING:
    from medgan3d.networks.stylegan import Generator


def mix_ws(base: Tensor, other: Tensor, styles: Sequence[int]) -> Tensor:
    """``base`` ws with the layers ``styles`` taken from ``other`` (both ``[num_ws, w_dim]``)."""
    ws = base.clone()
    idx = list(styles)
    ws[idx] = other[idx]
    return ws


@dataclass
class MixGrid:
    """The volumes of a grid (``[*spatial]`` in [-1, 1]): ``rows[i]``, ``cols[j]`` and ``cells[i][j]``."""

    rows: list[np.ndarray]
    cols: list[np.ndarray]
    cells: list[list[np.ndarray]]
    styles: tuple[int, ...]


@torch.no_grad()
def style_mix(
    G: Generator, rows: Sequence[Latent], cols: Sequence[Latent], styles: Sequence[int], noise: str = "const"
) -> MixGrid:
    """Every row latent with the ``styles`` layers of every column latent, one volume at a time.

    ``noise``: ``const`` (G's stored maps, the same for every cell), ``none``, or ``latent`` (a projected
    latent's own maps: a cell takes its row's, the base it is built on).
    """
    styles = tuple(styles)
    row_vols = [render(G, r.ws, latent_noise(r, noise)) for r in rows]
    col_vols = [render(G, c.ws, latent_noise(c, noise)) for c in cols]
    cells = [[render(G, mix_ws(r.ws, c.ws, styles), latent_noise(r, noise)) for c in cols] for r in rows]
    return MixGrid(row_vols, col_vols, cells, styles)


def mix(
    run: str | os.PathLike[str],
    rows: str | Sequence[str | int],
    cols: str | Sequence[str | int],
    styles: str | Sequence[int],
    out: str | os.PathLike[str],
    psi: float = 1.0,
    noise: str = "const",
    data: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    clip: bool = True,
) -> dict[str, Any]:
    """Write a style-mixing grid of a run's G_ema: ``row{i}-*.nii.gz``, ``col{j}-*.nii.gz``, ``mix-r{i}-c{j}``
    ``.nii.gz``, ``grid_{axial,coronal,sagittal}.png`` and ``mix.json``; return the record of ``mix.json``.
    ``clip`` (default): values clipped to the trained window, as ``generate`` writes them.

    ``rows``/``cols``: seeds and/or ``.npz`` files of projected latents (``"0,1,a.npz"``); ψ truncates the
    seeds towards the generator's ``w_avg``. ``styles``: ``coarse|middle|fine|all|none``, ``A-B``, ``a,b``.
    """
    from medgan3d.generate import find_manifest, synthetic_info
    from medgan3d.viz import IntensityWindow, save_plane_grids

    G = load_stylegan(run, device)
    layers = parse_styles(styles, G)
    row_lat, col_lat = parse_latents(rows, G, psi), parse_latents(cols, G, psi)
    grid = style_mix(G, row_lat, col_lat, layers, noise)
    manifest = find_manifest(run, data)
    geometry = Geometry.of_dataset(manifest)
    band = describe_styles(layers, G)
    info = synthetic_info(run, manifest, "mix", clipped=clip, psi=psi)
    out = Path(out)
    files: dict[str, str] = {}
    for kind, lats, vols in (("row", row_lat, grid.rows), ("col", col_lat, grid.cols)):
        for i, (lat, vol) in enumerate(zip(lats, vols, strict=True)):
            path = out / f"{kind}{i:02d}-{lat.label}.nii.gz"
            files[f"{kind}{i}"] = geometry.write(path, vol, dataclasses.replace(info, label=lat.label)).name
    for i, row in enumerate(grid.cells):
        for j, vol in enumerate(row):
            label = f"{row_lat[i].label} with {band} of {col_lat[j].label}"
            path = out / f"mix-r{i:02d}-c{j:02d}.nii.gz"
            files[f"mix-r{i}-c{j}"] = geometry.write(path, vol, dataclasses.replace(info, label=label)).name
    table: list[list[Any]] = [
        [None, *grid.cols],
        *[[r, *cells] for r, cells in zip(grid.rows, grid.cells, strict=True)],
    ]
    pngs = save_plane_grids(
        table,
        out,
        ["", *(r.label for r in row_lat)],
        ["", *(c.label for c in col_lat)],
        title=f"rows give the base, columns {band}",
        spacing=geometry.spacing,
        window=IntensityWindow.of_manifest(manifest),
    )
    record = {
        "run": str(run),
        "styles": str(styles) if isinstance(styles, str) else list(styles),
        "layers": list(layers),
        "band": band,
        "psi": psi,
        "noise": noise,
        "rows": [_describe(r) for r in row_lat],
        "cols": [_describe(c) for c in col_lat],
        "files": files,
        "grids": [p.name for p in pngs],
        "unit": geometry.unit,
        "clipped_to_window": clip,
        "w_layers": [_layer(w) for w in w_layers(G)],
    }
    text = json.dumps(record, indent=2) + "\n"
    atomic_write(out / "mix.json", lambda p: p.write_text(text, encoding="utf-8"))
    return record


def _describe(lat: Latent) -> dict[str, Any]:
    return {"label": lat.label, "source": lat.source, "projected_noise": lat.noise is not None}


def _layer(w: Any) -> dict[str, Any]:
    return {"w": w.index, "stage": w.stage, "layers": list(w.layers), "resolution": list(w.resolution)}
