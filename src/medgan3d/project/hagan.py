"""HA-GAN runs: encode real scans into the latent space and reconstruct them (the hierarchical encoder).

Sun et al., "Hierarchical Amortized GAN for 3D High Resolution Medical Image Synthesis" (IEEE JBHI 2022),
§III-C and Fig. 2: at inference E^H runs on the whole volume, E^G maps its latent feature map to z, and G
decodes z at full resolution. ``steps > 0`` refines that z by gradient descent on the training objective of
E^G (L1 on one random high-resolution sub-volume and on the low-resolution volume per step), which keeps the
memory of each step at training size whatever the resolution.

Scans are read and preprocessed exactly as the run's dataset was (its manifest's preprocessing preset), and
every output is written under a temp name and renamed.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from medgan3d.data.manifest import Manifest
from medgan3d.fs import atomic_write
from medgan3d.modeling import from_pretrained
from medgan3d.project.common import read_scan, reconstruction_info, reconstruction_metrics, write_json

if TYPE_CHECKING:
    from medgan3d.generate import SyntheticInfo
from medgan3d.training.families.hagan import Crop, HAGANLoss, real_views

if TYPE_CHECKING:
    from medgan3d.networks.hagan import HAGANEncoder, HAGANGenerator, HAGANLatentEncoder


@dataclass
class HAGANModel:
    """The networks of one HA-GAN checkpoint, in eval mode, and where they came from."""

    G: HAGANGenerator
    E_H: HAGANEncoder
    E_G: HAGANLatentEncoder
    checkpoint: Path
    loss: HAGANLoss  # the run's objective settings: refinement uses its low-res view


def load_hagan(run: str | os.PathLike[str], device: str = "cpu") -> HAGANModel:
    """G, E^H and E^G of a run folder (its newest intact checkpoint) or of one checkpoint folder."""
    from medgan3d.training.checkpoint import resolve_checkpoint

    ckpt = resolve_checkpoint(run)
    if not is_hagan_checkpoint(ckpt):
        raise ValueError(f"{ckpt}: not an HA-GAN checkpoint (no E_G/ encoder)")
    nets = {
        name: from_pretrained(ckpt / name, device).eval().requires_grad_(False)
        for name in ("G", "E_H", "E_G")
    }
    return HAGANModel(nets["G"], nets["E_H"], nets["E_G"], ckpt, _run_loss(ckpt))


def is_hagan_checkpoint(ckpt: Path) -> bool:
    """An HA-GAN checkpoint holds the latent encoder E^G beside G."""
    return (Path(ckpt) / "E_G").is_dir()


def _run_loss(ckpt: Path) -> HAGANLoss:
    """The HA-GAN settings the run trained with (defaults for a checkpoint outside a run folder)."""
    import yaml

    from medgan3d.training.checkpoint import run_dir_of

    config = run_dir_of(ckpt) / "config.yaml"
    if not config.is_file():
        return HAGANLoss()
    loss = (yaml.safe_load(config.read_text(encoding="utf-8")).get("train") or {}).get("loss") or {}
    return HAGANLoss(**loss)


def encode(model: HAGANModel, x: Tensor) -> Tensor:
    """z of volumes ``x`` (B, 1, R, R, R) in [-1, 1]: E^G(E^H(x)) on the whole volume (Fig. 2)."""
    from medgan3d.networks.hagan import encode_volume

    with torch.no_grad():
        return encode_volume(model.E_H, model.E_G, x)[1]


def refine(model: HAGANModel, x: Tensor, z: Tensor, steps: int, lr: float = 0.01, seed: int = 0) -> Tensor:
    """``steps`` Adam steps on z of L1(G's sub-volume, real sub-volume) + L1(G's low-res, real low-res), /2,
    one seeded random aligned sub-volume per step (the E^G objective of training)."""
    G = model.G
    z = z.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        start = int(torch.randint(0, G.max_start + 1, (1,), generator=g))
        sub_real, low_real = real_views(x, Crop(start, 4 * start, 0.0), G.resolution, model.loss)
        sub, low = G(z, start)
        loss = F.l1_loss(sub, sub_real)
        if model.loss.low_res:  # without the low-res branch G^L was never trained
            loss = (loss + F.l1_loss(low, low_real)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return z.detach()


def _write_volume(
    path: Path, values: np.ndarray, info: dict[str, Any], synthetic: SyntheticInfo | None = None
) -> None:
    """A volume in the scan's units and geometry; a ``synthetic`` one (the reconstruction) marked so."""
    from medgan3d.data import write_nifti
    from medgan3d.data.preprocess import denormalize_values

    if synthetic is not None:
        from medgan3d.generate import write_synthetic

        write_synthetic(path, values, synthetic, affine=np.asarray(info["affine"]), spacing=info["spacing"])
        return
    lo, hi = info["intensity_range"]
    units = np.asarray(denormalize_values(values, float(lo), float(hi)), dtype=np.float32)
    atomic_write(path, lambda p: write_nifti(p, units, affine=np.asarray(info["affine"])))


def project_scan(
    model: HAGANModel,
    scan: Path,
    manifest: Manifest,
    out: Path,
    steps: int = 0,
    chunk_depth: int | None = 8,
    seed: int = 0,
) -> dict[str, Any]:
    """Encode (and refine) one scan; write reconstruction/target NIfTI, latent.npy, metrics.json, preview.png."""
    array, info = read_scan(scan, manifest)
    unit = manifest.intensity.unit
    return project_array(model, array, info, str(scan), out, steps, chunk_depth, seed, unit)


def project_array(
    model: HAGANModel,
    array: np.ndarray,
    info: dict[str, Any],
    source: str,
    out: Path,
    steps: int = 0,
    chunk_depth: int | None = 8,
    seed: int = 0,
    unit: str = "",
) -> dict[str, Any]:
    """:func:`project_scan` for a volume already preprocessed (``[D, H, W]`` in [-1, 1], its item info, the
    data's ``unit``); the reconstruction is marked synthetic (descrip, JSON sidecar), the target is not."""
    from medgan3d.viz import save_slice_grid

    if tuple(array.shape) != tuple(model.G.img_shape[1:]):
        raise ValueError(
            f"{source}: preprocessed to {list(array.shape)}, the model generates "
            f"{list(model.G.img_shape[1:])}"
        )
    x = torch.from_numpy(np.ascontiguousarray(array))[None, None].to(next(model.G.parameters()).device)
    z = encode(model, x)
    metrics: dict[str, Any] = {"scan": source, "checkpoint": str(model.checkpoint), "steps": steps}
    with torch.no_grad():
        rec = model.G.generate(z, chunk_depth=chunk_depth)
    metrics["encoder"] = reconstruction_metrics(rec, x)
    if steps > 0:
        z = refine(model, x, z, steps, seed=seed)
        with torch.no_grad():
            rec = model.G.generate(z, chunk_depth=chunk_depth)
        metrics["refined"] = reconstruction_metrics(rec, x)
    out.mkdir(parents=True, exist_ok=True)
    rec_np = rec[0, 0].float().cpu().numpy()
    lo, hi = info["intensity_range"]
    label = f"HA-GAN encoder reconstruction of {source}" + (f", refined {steps} steps" if steps > 0 else "")
    mark = reconstruction_info(model.checkpoint, lo, hi, unit, source, label)
    _write_volume(out / "reconstruction.nii.gz", rec_np, info, mark)
    _write_volume(out / "target.nii.gz", array, info)
    atomic_write(out / "latent.npy", lambda p: np.save(p, z[0].cpu().numpy()))
    write_json(out / "metrics.json", metrics)
    save_slice_grid(
        [array, rec_np], out / "preview.png", spacing=info["spacing"], titles=["target", "reconstruction"]
    )
    return metrics


def dataset_features(
    model: HAGANModel, data: str | os.PathLike[str], out: Path, split: str | None = None
) -> Path:
    """z of every volume of a prepared dataset (one row per volume, in manifest order) as ``features.npy``
    plus ``features.csv`` (index, source, split) for downstream regression (Sun et al., Table "R²")."""
    manifest = Manifest.load(data)
    volumes = manifest.open_array()
    split_of = {i: name for name, idx in manifest.splits.items() for i in idx}
    rows = [i for i in range(len(volumes)) if split is None or split_of.get(i) == split]
    if not rows:
        raise ValueError(f"{data}: no volumes in split {split!r}")
    device = next(model.G.parameters()).device
    feats = [
        encode(model, torch.from_numpy(np.asarray(volumes[i], dtype=np.float32))[None].to(device))[0].cpu()
        for i in rows
    ]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "features.npy", lambda p: np.save(p, torch.stack(feats).numpy()))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["index", "source", "split"])
    writer.writerows([i, manifest.items[i].source, split_of.get(i, "")] for i in rows)
    atomic_write(out / "features.csv", lambda p: p.write_text(table.getvalue(), encoding="utf-8"))
    return out / "features.npy"
