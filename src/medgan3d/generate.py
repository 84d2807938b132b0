"""Sampling trained generators to NIfTI volumes with the data's geometry and units, marked as synthetic.

Every volume is written by :func:`write_synthetic`: the NIfTI header says "synthetic, medgan3d <version>" and
which window its units are (``descrip``, with ``cal_min``/``cal_max`` set to that window), and a JSON sidecar
of the same name (``seed0000.json`` beside ``seed0000.nii.gz``, as BIDS keeps per-file metadata) records the
run, checkpoint, seed, ψ, model family and ``"synthetic": true``, so a generated scan cannot pass for a patient's.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medgan3d import __version__
from medgan3d.data.labels import LabelError, LabelSpec
from medgan3d.data.manifest import MANIFEST_NAME, Manifest
from medgan3d.fs import atomic_write
from medgan3d.sampling import DEFAULT_CHUNK_DEPTH, sample_batches
from medgan3d.training.checkpoint import (
    CKPT_PREFIX,
    STATE_NAME,
    CheckpointWarning,
    is_network_dir,
    load_generator,
    resolve_checkpoint,
    run_dir_of,
)
from medgan3d.viz import MODEL_WINDOW, IntensityWindow, save_slice_grid

if TYPE_CHECKING:
    from torch import nn

DESCRIP_BYTES = 80  # the NIfTI-1 header's descrip field
_FAMILY_OF_CLASS = {"Generator": "stylegan2", "HAGANGenerator": "hagan", "BaselineGenerator": "baseline"}


def find_manifest(source: str | os.PathLike[str], data: str | os.PathLike[str] | None) -> Manifest | None:
    """The dataset manifest: ``--data``'s, else the copy a run keeps beside its checkpoints (None: neither)."""
    folders = [Path(data)] if data is not None else []
    source = Path(source)
    if not is_network_dir(source):  # a run folder or a checkpoint in one: no need to verify it here
        folders += [run_dir_of(source)]
    for folder in folders:
        if (folder / MANIFEST_NAME).is_file():
            return Manifest.load(folder, check_array=False)
    if data is not None:
        raise FileNotFoundError(f"{data}: no {MANIFEST_NAME} (not a prepared dataset)")
    return None


@dataclass(frozen=True)
class SyntheticInfo:
    """Where a synthetic volume came from and what its values mean (header ``descrip`` and JSON sidecar).

    ``window``: the units of the written values (the trained window, or model units); ``clipped``: whether
    values were clipped to it. ``tool``: the command that wrote it (generate, mix, interpolate, ...).
    """

    run: str
    family: str
    window: IntensityWindow
    clipped: bool
    tool: str = "generate"
    checkpoint: str | None = None
    kimg: float | None = None
    seed: int | None = None
    psi: float | None = None
    label: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``seed0000.json`` for ``seed0000.nii.gz`` (or ``.nii``)."""
    path = Path(path)
    stem = path.name.removesuffix(".gz").removesuffix(".nii")
    return path.with_name(stem + ".json")


def descrip(info: SyntheticInfo) -> str:
    """ASCII header text of at most 80 bytes: ``synthetic, medgan3d 0.1.0, kimg 12, seed 5, HU -250 to 650``.

    Details that do not fit are left out (seed first, then ψ, then kimg); "synthetic", the version and the
    units always stay, and the sidecar has everything."""
    w = info.window
    units = f"{w.unit} {'pct ' if w.kind == 'percentile' else ''}{w.lo:.4g} to {w.hi:.4g}"
    optional = [
        f"kimg {info.kimg:g}" if info.kimg is not None else "",
        f"psi {info.psi:g}" if info.psi is not None else "",
        f"seed {info.seed}" if info.seed is not None else "",
    ]
    while True:
        parts = ["synthetic", f"medgan3d {__version__}", *[p for p in optional if p], units]
        text = ", ".join(parts).encode("ascii", "replace").decode("ascii")
        if len(text) <= DESCRIP_BYTES or not any(optional):
            return text[:DESCRIP_BYTES]
        optional[max(i for i, p in enumerate(optional) if p)] = ""


def sidecar(info: SyntheticInfo, image: str, spacing: Sequence[float] | None = None) -> dict[str, Any]:
    """The JSON sidecar of one synthetic volume (``GeneratedBy`` as in BIDS derivatives)."""
    w = info.window
    record: dict[str, Any] = {
        "synthetic": True,
        "description": "synthetic volume sampled from a generative model; not a scan of a patient",
        "image": image,
        "GeneratedBy": [{"Name": "medgan3d", "Version": __version__, "Description": f"medgan3d {info.tool}"}],
        "medgan3d_version": __version__,
        "tool": info.tool,
        "run": info.run,
        "checkpoint": info.checkpoint,
        "kimg": info.kimg,
        "family": info.family,
        "seed": info.seed,
        "psi": info.psi,
        "units": w.unit,
        "window": [w.lo, w.hi],
        "window_kind": w.kind,
        "window_description": w.describe(),
        "clipped_to_window": info.clipped,
    }
    if info.label is not None:
        record["label"] = info.label
    if spacing is not None:
        record["spacing_mm"] = [float(s) for s in spacing]
    return record | dict(info.extra)


def write_synthetic(
    path: str | os.PathLike[str],
    volume: np.ndarray,
    info: SyntheticInfo,
    affine: np.ndarray | Sequence | None = None,
    spacing: Sequence[float] | None = None,
) -> tuple[Path, Path]:
    """Write a synthetic ``[D, H, W]`` volume of model intensities ([-1, 1]) as float32 NIfTI in the units of
    ``info.window`` (clipped to it when ``info.clipped``), with ``descrip`` and ``cal_min``/``cal_max`` set, and
    its JSON sidecar; both under temp names and renamed. ``affine`` places the voxels (else ``spacing``, else
    1 mm); ``spacing`` (d, h, w) is also recorded in the sidecar. Returns (NIfTI path, sidecar path)."""
    from medgan3d.data import write_nifti

    path = Path(path)
    values = np.asarray(volume, dtype=np.float32)
    if info.clipped:
        values = np.clip(
            values, -1.0, 1.0
        )  # the map to units is increasing: the same as clipping to [lo, hi]
    units = np.asarray(info.window.to_units(values), dtype=np.float32)
    text = descrip(info)
    cal = (info.window.lo, info.window.hi)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: write_nifti(p, units, affine=affine, spacing=spacing, descrip=text, cal=cal))
    side = sidecar_path(path)
    body = json.dumps(sidecar(info, path.name, spacing), indent=2) + "\n"
    atomic_write(side, lambda p: p.write_text(body, encoding="utf-8"))
    return path, side


def source_info(source: str | os.PathLike[str], ckpt: Path | None = None) -> dict[str, Any]:
    """Run folder, checkpoint, its kimg (from the ``ckpt-<images>`` name), model family and preset of a
    generator source; ``ckpt`` is the resolved checkpoint of a run folder (None for a saved network)."""
    source = Path(source)
    if ckpt is None and source.parent.name.startswith(CKPT_PREFIX):  # a network folder inside a checkpoint
        ckpt = source.parent
    info: dict[str, Any] = {
        "run": str(source),
        "checkpoint": None,
        "kimg": None,
        "family": None,
        "preset": None,
    }
    if ckpt is not None:
        digits = ckpt.name[len(CKPT_PREFIX) :]
        info |= {
            "run": str(run_dir_of(ckpt)),
            "checkpoint": ckpt.name,
            "kimg": int(digits) / 1000 if digits.isdigit() else None,
        }
        try:
            config = json.loads((ckpt / STATE_NAME).read_text(encoding="utf-8")).get("config", {})
            model = config.get("model", {})
            info |= {
                "family": model.get("family"),
                "preset": config.get("preset") or None,
                "labels": model.get("labels"),
            }
        except (OSError, ValueError, AttributeError):
            pass
    if info["family"] is None:
        info["family"] = _family_of_network(source if ckpt is None else ckpt)
    return info


def _family_of_network(path: Path) -> str:
    from medgan3d.modeling import read_config

    for net in (path, path / "G_ema", path / "G"):
        if is_network_dir(net):
            name = str(read_config(net).get("class"))
            return _FAMILY_OF_CLASS.get(name, name)
    return "unknown"


def resolve_source(source: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """The generator of a run folder (newest intact checkpoint), checkpoint or saved network, in eval mode,
    and :func:`source_info` about the checkpoint it came from."""
    source = Path(source)
    ckpt = None if is_network_dir(source) else resolve_checkpoint(source)
    G = load_generator(source if ckpt is None else ckpt).eval()
    return G, source_info(source, ckpt)


def synthetic_info(
    source: str | os.PathLike[str],
    manifest: Manifest | None,
    tool: str,
    clipped: bool,
    psi: float | None = None,
) -> SyntheticInfo:
    """What the outputs of ``tool`` (mix, interpolate, ...) from an already loaded generator ``source`` share:
    run, checkpoint and kimg (resolved again, quietly: loading has warned), family, the manifest's window. Set
    ``label``/``seed`` per file with :func:`dataclasses.replace`."""
    source = Path(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        origin = source_info(source, None if is_network_dir(source) else resolve_checkpoint(source))
    return SyntheticInfo(
        origin["run"],
        origin["family"],
        IntensityWindow.of_manifest(manifest),
        clipped,
        tool,
        origin["checkpoint"],
        origin["kimg"],
        psi=psi,
    )


def label_spec(G: nn.Module, origin: Mapping[str, Any], source: str | os.PathLike[str]) -> LabelSpec | None:
    """What a loaded generator conditions on (None: unconditional), from the run's model config."""
    if not getattr(G, "c_dim", 0):
        return None
    if not origin.get("labels"):
        raise LabelError(
            f"{source}: a conditional generator without the run that says what its labels are; "
            "give the run folder or checkpoint"
        )
    return LabelSpec.from_dict(origin["labels"])


def choose_labels(
    spec: LabelSpec | None, n: int, label: float | None = None, labels: Sequence[float] | None = None
) -> list[float] | None:
    """The label of each of ``n`` volumes: ``label`` for all, or ``labels`` one each, or (neither) every class
    in turn / the value range in n steps; a label the model does not know is refused by name."""
    if spec is None:
        if label is not None or labels is not None:
            raise LabelError(
                "--label/--labels-from: the model is unconditional (trained without labels); "
                "conditional models come from train on a dataset prepared with --labels"
            )
        return None
    if labels is not None:
        if len(labels) != n:
            raise LabelError(f"--labels-from gives {len(labels)} labels for {n} volumes")
        return [spec.check(v, "--labels-from label") for v in labels]
    if label is not None:
        return [spec.check(label)] * n
    return spec.grid(n)


def sample_to_nifti(
    source: str | os.PathLike[str],
    seeds: list[int],
    out: str | os.PathLike[str],
    psi: float = 1.0,
    data: str | os.PathLike[str] | None = None,
    raw: bool = False,
    chunk_depth: int | None = DEFAULT_CHUNK_DEPTH,
    clip: bool = True,
    label: float | None = None,
    labels: Sequence[float] | None = None,
) -> list[Path]:
    """Write ``seed%04d.nii.gz`` with its ``seed%04d.json`` sidecar for every seed, and ``preview.png``: G_ema of
    the latest intact checkpoint for StyleGAN2 runs, G for families without an EMA (HA-GAN, decoded at full
    resolution in slabs of ``chunk_depth`` latent slices; 0/None: the whole volume at once, the same values).

    With a manifest (from ``data`` or the run) volumes get the dataset's spacing and affine and are mapped
    back to its units (Hounsfield units for CT window presets; for percentile presets the dataset's median
    range); otherwise (or with ``raw``) they stay in model units [-1, 1] with 1 mm voxels. ``clip`` (default)
    clips to the trained window — the range the model saw — since values outside it were never in the data.

    A conditional model (trained on a labelled dataset) generates every volume with ``label``, or seed i with
    ``labels[i]``, or (neither) its classes in turn; the label is recorded in each sidecar's ``condition``.
    """
    G, origin = resolve_source(source)
    if G.spatial_dims != 3:
        raise ValueError(f"{source}: a {G.spatial_dims}D generator; generate writes 3D volumes")
    spec = label_spec(G, origin, source)
    chosen = choose_labels(spec, len(seeds), label, labels)
    manifest = find_manifest(source, data)
    affine = None if manifest is None else manifest.affine_array
    spacing = manifest.spacing if manifest is not None else (1.0, 1.0, 1.0)
    data_window = IntensityWindow.of_manifest(manifest)
    window = MODEL_WINDOW if raw else data_window
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    previews: list[np.ndarray] = []
    titles = []
    c = None if spec is None or chosen is None else spec.encode(list(chosen))
    for chunk, volumes in sample_batches(G, seeds, psi, chunk_depth=chunk_depth, c=c):
        for s, vol in zip(chunk, volumes[:, 0].numpy(), strict=True):
            i = len(written)
            if len(previews) < 8:
                previews.append(vol)
            extra: dict[str, Any] = {"preset": origin["preset"]}
            if spec is not None and chosen is not None:
                extra["condition"] = {"kind": spec.kind, "label": chosen[i]}
            titles.append(f"seed {s}" + (f", label {chosen[i]:g}" if chosen is not None else ""))
            info = SyntheticInfo(
                origin["run"],
                origin["family"],
                window,
                clip,
                "generate",
                origin["checkpoint"],
                origin["kimg"],
                s,
                psi,
                extra=extra,
            )
            path, _ = write_synthetic(out / f"seed{s:04d}.nii.gz", vol, info, affine=affine, spacing=spacing)
            written.append(path)
    kimg = f", kimg {origin['kimg']:g}" if origin["kimg"] is not None else ""
    save_slice_grid(
        previews[:8],
        out / "preview.png",
        spacing=spacing,
        titles=titles[:8],
        window=data_window,
        title=f"synthetic, {origin['family']}{kimg}, psi {psi:g}",
    )
    return written
