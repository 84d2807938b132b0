"""Project real scans into a trained model's latent space and reconstruct them, for the run's family.

* StyleGAN2 runs (``G_ema``): GAN inversion by optimisation (:mod:`medgan3d.project.stylegan`, StyleGAN2's
  projector in N-D with the noise regulariser on; Karras et al. CVPR 2020, App. D; Hong et al.,
  3D-StyleGAN, DGM4MICCAI 2021).
* HA-GAN runs (a checkpoint with ``E_G/``): the hierarchical encoder, optionally refined
  (:mod:`medgan3d.project.hagan`; Sun et al., IEEE JBHI 2022, §III-C).

Scans are read and preprocessed exactly as the run's dataset was (its manifest's preprocessing preset); the
volumes of a prepared dataset (a split of it) can be projected directly. :func:`project` picks the family.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from medgan3d.project.common import (
    Target,
    dataset_targets,
    read_scan,
    reconstruction_metrics,
    scan_names,
    scan_targets,
)
from medgan3d.project.hagan import (
    HAGANModel,
    dataset_features,
    encode,
    is_hagan_checkpoint,
    load_hagan,
    project_array,
    project_scan,
    refine,
)
from medgan3d.project.outputs import final_scores, project_targets, save_projection
from medgan3d.project.stylegan import (
    LOSS_PRESETS,
    Projection,
    ProjectorConfig,
    learning_rate,
    noise_regularizer,
    project_volume,
    w_noise_scale,
    w_statistics,
)

__all__ = [
    "LOSS_PRESETS",
    "HAGANModel",
    "Projection",
    "ProjectorConfig",
    "Target",
    "dataset_features",
    "dataset_targets",
    "encode",
    "family_of",
    "final_scores",
    "learning_rate",
    "load_hagan",
    "noise_regularizer",
    "project",
    "project_array",
    "project_scan",
    "project_targets",
    "project_volume",
    "read_scan",
    "reconstruction_metrics",
    "refine",
    "save_projection",
    "scan_names",
    "scan_targets",
    "w_noise_scale",
    "w_statistics",
]


def family_of(run: str | os.PathLike[str]) -> str:
    """``hagan`` or ``stylegan2`` for a run folder or checkpoint (its newest intact checkpoint); other families
    (the baselines) are refused: they have neither an encoder here nor a w space."""
    from medgan3d.modeling import read_config
    from medgan3d.training.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(run)
    if is_hagan_checkpoint(ckpt):
        return "hagan"
    for name in ("G_ema", "G"):
        if (ckpt / name).is_dir():
            cls = str(read_config(ckpt / name).get("class"))
            if cls == "Generator":
                return "stylegan2"
            raise ValueError(f"{ckpt}: projection supports StyleGAN2 and HA-GAN runs, not a {cls}")
    raise ValueError(f"{ckpt}: holds no generator (G_ema/ or G/)")


def project(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str],
    scans: Sequence[str | os.PathLike[str]] = (),
    data: str | os.PathLike[str] | None = None,
    split: str | None = None,
    limit: int | None = None,
    config: ProjectorConfig | None = None,
    steps: int | None = None,
    device: str = "cpu",
    hagan: dict[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Project ``scans`` (read with the run's or ``data``'s preprocessing) or, without scans, the volumes of
    ``data``'s ``split``; one folder per target under ``out``; the metrics of each target (and its ``folder``).

    ``steps``: optimisation steps (StyleGAN2: overrides ``config.steps``, default 1000; HA-GAN: encoder
    refinement, default 0). ``hagan``: ``chunk_depth`` and ``seed`` of the HA-GAN path.
    """
    import dataclasses

    out = Path(out)
    targets = _targets(run, scans, data, split, limit)
    if family_of(run) == "hagan":
        model = load_hagan(run, device)
        opts = {"chunk_depth": 8, "seed": 0} | (hagan or {})
        return [
            project_array(
                model,
                t.volume,
                t.info,
                t.source,
                out / t.name,
                steps or 0,
                opts["chunk_depth"] or None,
                opts["seed"],
                t.unit,
            )
            | {"folder": str(out / t.name)}
            for t in targets
        ]
    from medgan3d.latents import load_stylegan
    from medgan3d.training.checkpoint import resolve_checkpoint

    cfg = config or ProjectorConfig()
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    G = load_stylegan(run, device)
    total = len(targets) if isinstance(targets, list) else len(scans)
    return project_targets(G, targets, out, cfg, str(resolve_checkpoint(run)), progress, total)


def _targets(
    run: str | os.PathLike[str],
    scans: Sequence[str | os.PathLike[str]],
    data: str | os.PathLike[str] | None,
    split: str | None,
    limit: int | None,
) -> Iterable[Target] | list[Target]:
    """Scans (read lazily) with the run's or ``data``'s manifest, or the volumes of ``data``'s split."""
    from medgan3d.data.manifest import MANIFEST_NAME
    from medgan3d.generate import find_manifest

    if scans:
        manifest = find_manifest(run, data)
        if manifest is None:
            raise FileNotFoundError(
                f"{run}: no {MANIFEST_NAME} beside the run; give --data DATASET (its preprocessing)"
            )
        return scan_targets([Path(s) for s in scans], manifest)
    if data is None:
        raise ValueError("give one or more scans, or --data DATASET [--split val] to project its volumes")
    return dataset_targets(data, split, limit)[0]
