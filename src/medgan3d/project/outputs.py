"""StyleGAN2 projection of a batch of targets, and everything written for each of them.

Per target folder: ``projected.npz`` (ws, w in W space, every noise map), ``reconstruction.nii.gz`` (with the
projection's noise), ``reconstruction_noise_off.nii.gz``, ``target.nii.gz`` (float, the target's affine and
units), ``steps/stepNNNN.png`` (centre slices of target and volume during the optimisation), ``preview.png``
and ``metrics.json`` (scores of the final volume with the projection's noise, with noise off and with the
generator's own constant noise, the settings and the loss trace). Every file is written under a temp name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from medgan3d.fs import atomic_write
from medgan3d.latents import Geometry, render
from medgan3d.project.common import Target, reconstruction_info, reconstruction_metrics, write_json
from medgan3d.project.stylegan import Projection, ProjectorConfig, project_volume, w_statistics

if TYPE_CHECKING:
    from medgan3d.networks.stylegan import Generator

Progress = Callable[[str, int, int], None]  # (what, done, total)


def save_projection(path: Path, proj: Projection, checkpoint: str = "") -> Path:
    """``projected.npz``: ``ws`` [1, num_ws, w_dim], ``w`` [1, w_dim] (W space), ``noise_NN`` maps, and notes.

    No pickled objects: strings are stored as unicode arrays (``np.load(..., allow_pickle=False)`` reads it).
    """
    arrays: dict[str, np.ndarray] = {"ws": proj.ws[None].cpu().numpy().astype(np.float32)}
    if proj.w is not None:
        arrays["w"] = proj.w[None].cpu().numpy().astype(np.float32)
    for i, m in enumerate(proj.noise or []):
        arrays[f"noise_{i:02d}"] = m.cpu().numpy().astype(np.float32)
    arrays |= {
        "space": np.asarray(proj.config.space),
        "noise_mode": np.asarray(proj.config.noise),
        "checkpoint": np.asarray(checkpoint),
    }
    atomic_write(path, lambda p: np.savez(p, **arrays))  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return path


def final_scores(
    G: Generator, proj: Projection, target: Tensor
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Scores of the final ws rendered with the projection's noise, with noise off and with G's constant noise.

    The gap between the first two is what the noise maps carry rather than the latent."""
    volumes = {
        "reconstruction": render(G, proj.ws, proj.render_noise),
        "noise_off": render(G, proj.ws, "none"),
        "generator_noise": render(G, proj.ws, "const"),
    }
    scores = {k: reconstruction_metrics(torch.from_numpy(v)[None, None], target) for k, v in volumes.items()}
    return scores, volumes


def project_targets(
    G: Generator,
    targets: Iterable[Target],
    out: Path,
    cfg: ProjectorConfig | None = None,
    checkpoint: str = "",
    progress: Progress | None = None,
    total: int | None = None,
) -> list[dict[str, Any]]:
    """Project every target (one after the other, a fresh optimiser each) and write its folder under ``out``.

    The w statistics are computed once for the batch. ``progress(what, done, total)`` reports steps per scan
    (``what`` = the target's name) and finished scans (``what`` = ``"scans"``).
    """
    cfg = cfg or ProjectorConfig()
    G = G.float().eval().requires_grad_(False)
    stats = w_statistics(G, cfg.w_avg_samples, cfg.w_avg_seed)
    results = []
    for i, target in enumerate(targets):
        results.append(_project_one(G, target, out / target.name, cfg, stats, checkpoint, progress))
        if progress is not None:
            progress("scans", i + 1, total or i + 1)
    return results


def _project_one(
    G: Generator,
    target: Target,
    folder: Path,
    cfg: ProjectorConfig,
    stats: tuple[Tensor, float],
    checkpoint: str,
    progress: Progress | None,
) -> dict[str, Any]:
    from medgan3d.viz import save_slice_grid

    if tuple(target.volume.shape) != tuple(G.img_shape[1:]):
        from medgan3d.networks.stylegan import check_generator_shape

        check_generator_shape(
            target.volume.shape, G.synthesis.base_shape, what=f"{target.source}: preprocessed"
        )
        raise ValueError(
            f"{target.source}: preprocessed to {list(target.volume.shape)}, the model generates "
            f"{list(G.img_shape[1:])}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    geometry = Geometry.of_item(target.info, target.unit)
    x = torch.from_numpy(np.ascontiguousarray(target.volume, dtype=np.float32))[None, None]

    def snapshot(step: int, volume: Tensor) -> None:
        rec = volume[0, 0].float().cpu().numpy()
        save_slice_grid(
            [target.volume, rec],
            folder / "steps" / f"step{step:04d}.png",
            spacing=geometry.spacing,
            titles=["target", f"step {step}"],
        )

    def on_step(step: int) -> None:
        if progress is not None:
            progress(target.name, step + 1, cfg.steps)

    proj = project_volume(G, x, cfg, stats, on_step, snapshot)
    scores, volumes = final_scores(G, proj, x)  # rendered volumes come back on the CPU
    save_projection(folder / "projected.npz", proj, checkpoint)
    mark = reconstruction_info(
        checkpoint,
        geometry.lo or -1.0,
        geometry.hi or 1.0,
        geometry.unit,
        target.source,
        f"StyleGAN2 projection of {target.source} ({cfg.space})",
    )
    geometry.write(
        folder / "reconstruction.nii.gz",
        volumes["reconstruction"],
        dataclasses.replace(mark, label=f"{mark.label}, the projection's noise"),
    )
    geometry.write(
        folder / "reconstruction_noise_off.nii.gz",
        volumes["noise_off"],
        dataclasses.replace(mark, label=f"{mark.label}, noise off"),
    )
    geometry.write(folder / "target.nii.gz", target.volume)
    save_slice_grid(
        [target.volume, volumes["reconstruction"], volumes["noise_off"]],
        folder / "preview.png",
        spacing=geometry.spacing,
        titles=["target", "projected", "noise off"],
    )
    metrics = {
        "scan": target.source,
        "checkpoint": checkpoint,
        "family": "stylegan2",
        "space": cfg.space,
        "steps": cfg.steps,
        "scores": scores,
        "data_range": "[-1, 1] (PSNR peak 2)",
        "w_std": proj.w_std,
        "seconds": round(proj.seconds, 3),
        "settings": cfg.to_dict(),
        "history": proj.history,
    }
    write_json(folder / "metrics.json", metrics)
    return metrics | {"folder": str(folder)}
