"""Linear walks in W between seeds and/or projected scans, optionally restricted to a band of layers.

Hong et al., 3D-StyleGAN (DGM4MICCAI 2021, ``run_generator.py`` "interpolation-example"): w = w_a with the
chosen layers set to (1 − t)·w_a + t·w_b, t from 0 to 1 inclusive, deterministic noise. Here a walk may pass
through more than two latents (the first one keeps the layers outside the band for the whole walk, so the
walk is continuous), every frame is a float NIfTI in the dataset's units and geometry, and an animated GIF
shows the three centre slices (Karras et al., CVPR 2019, §4 interpolate in W for the same reason: W is the
space the synthesis network reads).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from medgan3d.errors import UsageError
from medgan3d.fs import atomic_write
from medgan3d.latents import (
    Geometry,
    Latent,
    describe_styles,
    load_stylegan,
    parse_latents,
    parse_styles,
    render,
)

if TYPE_CHECKING:
    from medgan3d.networks.stylegan import Generator


def lerp_ws(a: Tensor, b: Tensor, t: float, layers: Sequence[int], base: Tensor | None = None) -> Tensor:
    """``base`` (default ``a``) with ``layers`` set to ``(1 − t)·a + t·b`` (ws ``[num_ws, w_dim]``)."""
    ws = (a if base is None else base).clone()
    idx = list(layers)
    ws[idx] = torch.lerp(a[idx], b[idx], t)
    return ws


def walk(latents: Sequence[Latent], steps: int, layers: Sequence[int]) -> list[tuple[int, float, Tensor]]:
    """(segment, t, ws) of every frame: ``steps`` frames per segment, both ends included, the shared ends once."""
    if len(latents) < 2:
        raise ValueError(f"a walk needs at least two latents, got {len(latents)}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2 (both ends), got {steps}")
    base = latents[0].ws
    frames = []
    for k, (a, b) in enumerate(itertools.pairwise(latents)):
        for i, t in enumerate(np.linspace(0.0, 1.0, steps)):
            if i == 0 and k > 0:
                continue
            frames.append((k, float(t), lerp_ws(a.ws, b.ws, float(t), layers, base)))
    return frames


@torch.no_grad()
def walk_volumes(
    G: Generator, latents: Sequence[Latent], steps: int, layers: Sequence[int], noise: str = "const"
) -> list[np.ndarray]:
    """The volumes of :func:`walk` (``noise``: ``const`` = G's stored maps for every frame, or ``none``)."""
    if noise not in ("const", "none"):
        raise ValueError(f"noise must be const or none for a walk, got {noise!r}")
    return [render(G, ws, noise) for _, _, ws in walk(latents, steps, layers)]


def interpolate(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str],
    seeds: str | Sequence[int] = (),
    latents: str | Sequence[str] = (),
    steps: int = 8,
    styles: str | Sequence[int] = "all",
    psi: float = 1.0,
    noise: str = "const",
    data: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    frame_ms: int = 150,
    clip: bool = True,
) -> dict[str, Any]:
    """Write ``frameNNN.nii.gz`` for every frame, ``walk.gif`` and ``interpolation.json``; return the record.
    ``clip`` (default): values clipped to the trained window, as ``generate`` writes them.

    The walk visits the ``seeds`` (ψ-truncated towards ``w_avg``) then the projected ``latents`` (.npz).
    """
    from medgan3d.generate import find_manifest, synthetic_info
    from medgan3d.viz import save_gif, slice_strip

    G = load_stylegan(run, device)
    layers = parse_styles(styles, G)
    ends = _endpoints(G, seeds, latents, psi)
    frames = walk(ends, steps, layers)
    volumes = walk_volumes(G, ends, steps, layers, noise)
    manifest = find_manifest(run, data)
    geometry = Geometry.of_dataset(manifest)
    info = synthetic_info(run, manifest, "interpolate", clipped=clip, psi=psi)
    out = Path(out)
    names = []
    for i, (volume, (k, t, _)) in enumerate(zip(volumes, frames, strict=True)):
        frame = dataclasses.replace(info, label=f"segment {k}, t {t:.3g}")
        names.append(geometry.write(out / f"frame{i:03d}.nii.gz", volume, frame).name)
    height = max(128, *volumes[0].shape)
    save_gif([slice_strip(v, geometry.spacing, height=height) for v in volumes], out / "walk.gif", frame_ms)
    record = {
        "run": str(run),
        "endpoints": [{"label": e.label, "source": e.source} for e in ends],
        "layers": list(layers),
        "band": describe_styles(layers, G),
        "psi": psi,
        "noise": noise,
        "frames": [{"file": n, "segment": k, "t": t} for n, (k, t, _) in zip(names, frames, strict=True)],
        "gif": "walk.gif",
        "unit": geometry.unit,
        "clipped_to_window": clip,
    }
    text = json.dumps(record, indent=2) + "\n"
    atomic_write(out / "interpolation.json", lambda p: p.write_text(text, encoding="utf-8"))
    return record


def _endpoints(
    G: Generator, seeds: str | Sequence[int], latents: str | Sequence[str], psi: float
) -> list[Latent]:
    """Seeds first, then projected files; a seed must be an integer and a latent a ``.npz`` file."""
    seed_tokens, file_tokens = _tokens(seeds), _tokens(latents)
    for token in seed_tokens:
        if not token.lstrip("-").isdigit():
            raise UsageError(f"--seeds: {token!r} is not an integer seed (projected latents go in --latents)")
    for token in file_tokens:
        if not token.lower().endswith(".npz"):
            raise UsageError(f"--latents: {token!r} is not a .npz file from medgan3d project")
    if len(seed_tokens) + len(file_tokens) < 2:
        raise UsageError("give at least two endpoints (--seeds and/or --latents)")
    return parse_latents(seed_tokens + file_tokens, G, psi)


def _tokens(group: str | Sequence[Any]) -> list[str]:
    parts = group.split(",") if isinstance(group, str) else [str(g) for g in group]
    return [p.strip() for p in parts if p.strip()]
