"""The latent side of a trained StyleGAN2 generator, shared by ``project``, ``mix`` and ``interpolate``.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020): the synthesis network reads
one w per layer (``num_ws`` of them); style mixing (Karras et al., "A Style-Based Generator Architecture for
GANs", CVPR 2019, §3.1 and Fig. 3) copies a band of those layers from a second latent. Hong et al.'s
3D-StyleGAN (DGM4MICCAI 2021) mixes brain MRI by w index; here the bands are derived from each model's stage
list (:func:`style_bands`) and every latent — a seed, or ws projected from a real scan — is a :class:`Latent`.

Noise is deterministic by default: the generator's stored constant maps (drawn from the run's seed at
initialisation and saved with every checkpoint), never fresh random draws.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from medgan3d.errors import UsageError
from medgan3d.fs import atomic_write

if TYPE_CHECKING:
    from medgan3d.data.manifest import Manifest
    from medgan3d.generate import SyntheticInfo
    from medgan3d.networks.stylegan import Generator, SynthesisLayer

BANDS = ("coarse", "middle", "fine")
NOISE_MODES = ("const", "none", "latent")


# --------------------------------------------------------------------------------------------------
# Which layer each w drives
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WLayer:
    """One w of the synthesis network: the stage (block) of the conv it modulates and what it drives."""

    index: int
    stage: int
    layers: tuple[str, ...]  # e.g. ("b1.conv0",), ("b0.torgb", "b1.conv0") for a skip generator
    resolution: tuple[int, ...]


def check_stylegan(G: Generator, what: str = "generator") -> None:
    """Refuse a generator without a mapping and synthesis network (HA-GAN, the baselines)."""
    if not (hasattr(G, "mapping") and hasattr(G, "synthesis") and hasattr(G.synthesis, "blocks")):
        raise ValueError(f"{what}: a {type(G).__name__} has no w space (only StyleGAN2 generators do)")


def w_layers(G: Generator) -> list[WLayer]:
    """Every w index with its stage, resolution and the layers it feeds, in the order synthesis reads them.

    A w's stage is that of the conv it modulates; the last w drives only the final toRGB (last stage).
    """
    check_stylegan(G)
    feeds: dict[int, list[str]] = {}
    stage_of: dict[int, int] = {}
    idx = 0
    blocks = G.synthesis.synthesis_blocks()
    for s, block in enumerate(blocks):
        convs = ["conv1"] if block.is_first else ["conv0", "conv1"]
        for j, name in enumerate(convs):
            feeds.setdefault(idx + j, []).append(f"b{s}.{name}")
            stage_of[idx + j] = s
        if block.torgb is not None:
            feeds.setdefault(idx + block.num_conv, []).append(f"b{s}.torgb")
            stage_of.setdefault(idx + block.num_conv, s)
        idx += block.num_conv
    resolutions = [tuple(b.conv1.resolution) for b in blocks]
    return [WLayer(i, stage_of[i], tuple(feeds[i]), resolutions[stage_of[i]]) for i in sorted(feeds)]


def band_stages(num_stages: int) -> dict[str, range]:
    """Stages of each band: the stage list split in three, coarse and middle rounded up.

    5 stages (3D-StyleGAN at 2 mm) give 2/2/1, 6 stages (1 mm) 2/2/2, 3 stages 1/1/1.
    """
    coarse = math.ceil(num_stages / 3)
    middle = math.ceil((num_stages - coarse) / 2)
    return {
        "coarse": range(coarse),
        "middle": range(coarse, coarse + middle),
        "fine": range(coarse + middle, num_stages),
    }


def style_bands(G: Generator) -> dict[str, tuple[int, ...]]:
    """The w indices of the coarse, middle and fine bands (from :func:`band_stages` over G's stages)."""
    layers = w_layers(G)
    stages = band_stages(len(G.synthesis.blocks))
    return {band: tuple(w.index for w in layers if w.stage in stages[band]) for band in BANDS}


def parse_styles(text: str | Sequence[int] | None, G: Generator) -> tuple[int, ...]:
    """w indices from ``coarse|middle|fine|all|none``, ``A-B`` (inclusive), ``a,b,c`` or a mix of them.

    An empty string, ``none`` or ``None`` is no layer; a sequence of ints is taken as it is (checked).
    """
    num_ws = G.num_ws
    if text is None:
        return ()
    if not isinstance(text, str):
        chosen = {int(i) for i in text}
    else:
        bands = style_bands(G)
        chosen = set()
        for token in (t.strip().lower() for t in text.split(",")):
            if token in ("", "none"):
                continue
            if token == "all":
                chosen.update(range(num_ws))
            elif token in bands:
                if not bands[token]:
                    raise UsageError(
                        f"styles {token!r}: empty for a generator of {len(G.synthesis.blocks)} stages"
                    )
                chosen.update(bands[token])
            else:
                chosen.update(_index_range(token, text))
    bad = sorted(i for i in chosen if not 0 <= i < num_ws)
    if bad:
        raise UsageError(
            f"styles {text!r}: w indices {bad} out of range; this generator has {num_ws} (0-{num_ws - 1})"
        )
    return tuple(sorted(chosen))


def _index_range(token: str, text: str) -> range:
    lo, sep, hi = token.partition("-")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise UsageError(
            f"styles {text!r}: {token!r} is not coarse|middle|fine|all|none, A-B or an index"
        ) from None
    if b < a:
        raise UsageError(f"styles {text!r}: range {token!r} runs backwards")
    return range(a, b + 1)


def describe_styles(indices: Sequence[int], G: Generator) -> str:
    """``w 3-6 (20×24×28 … 40×48×56)`` for titles and records."""
    if not indices:
        return "no layers"
    res = {w.index: w.resolution for w in w_layers(G)}
    shapes = ["×".join(map(str, res[i])) for i in (indices[0], indices[-1])]
    span = shapes[0] if shapes[0] == shapes[1] else f"{shapes[0]} … {shapes[1]}"
    return f"w {_compact(indices)} ({span})"


def _compact(indices: Sequence[int]) -> str:
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


# --------------------------------------------------------------------------------------------------
# Latents: seeds and projected files
# --------------------------------------------------------------------------------------------------


@dataclass
class Latent:
    """ws ``[num_ws, w_dim]`` with a label, and the noise maps that came with them (projected scans)."""

    label: str
    ws: Tensor
    noise: list[Tensor] | None = None
    source: str = ""


def seed_z(seed: int, z_dim: int) -> Tensor:
    """The z of a seed, the same one ``medgan3d generate`` draws for it."""
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(int(seed)))


@torch.no_grad()
def seed_latent(G: Generator, seed: int, psi: float = 1.0) -> Latent:
    """ws of one seed, truncated by ψ towards the generator's tracked ``w_avg`` (ψ = 0: w_avg itself)."""
    device = next(G.parameters()).device
    ws = G.mapping(seed_z(seed, G.z_dim)[None].to(device), truncation_psi=psi)[0]
    return Latent(f"seed{int(seed):04d}", ws, None, f"seed {seed}, psi {psi:g}")


def load_latent(path: str | os.PathLike[str], G: Generator) -> Latent:
    """ws (and noise maps, if saved) from a ``projected.npz`` of ``medgan3d project``.

    Also reads StyleGAN2-ADA's ``projected_w.npz`` (key ``w``, shape ``[1, num_ws, w_dim]``).
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz of projected latents ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path}: a single array, not a .npz of projected latents (medgan3d project writes them)"
        )
    with data:
        key = "ws" if "ws" in data else "w"
        if key not in data:
            raise ValueError(f"{path}: holds no 'ws' array (keys: {sorted(data.files)})")
        ws = np.asarray(data[key], dtype=np.float32).reshape(-1, np.shape(data[key])[-1])
        names = sorted(k for k in data.files if re.fullmatch(r"noise_\d+", k))
        noise = [torch.from_numpy(np.asarray(data[k], dtype=np.float32)) for k in names] or None
    if ws.shape == (1, G.w_dim):
        ws = np.repeat(ws, G.num_ws, axis=0)
    if ws.shape != (G.num_ws, G.w_dim):
        raise ValueError(f"{path}: ws of shape {list(ws.shape)}, the generator reads [{G.num_ws}, {G.w_dim}]")
    if noise is not None:
        expected = [tuple(layer.resolution) for layer in noise_layers(G)]
        if [tuple(n.shape) for n in noise] != expected:
            raise ValueError(f"{path}: noise maps {[list(n.shape) for n in noise]} do not fit this generator")
    device = next(G.parameters()).device
    label = path.parent.name if path.stem == "projected" else path.stem
    return Latent(label, torch.from_numpy(ws).to(device), noise, str(path))


def parse_latents(text: str | Sequence[str | int], G: Generator, psi: float = 1.0) -> list[Latent]:
    """Latents from ``0,1,2`` (seeds), ``a.npz,b.npz`` (projected files) or a mix; ψ applies to seeds only."""
    tokens = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t) for t in text]
    out = []
    for token in (t for t in tokens if t):
        if token.lower().endswith(".npz"):
            out.append(load_latent(token, G))
            continue
        try:
            seed = int(token)
        except ValueError:
            raise UsageError(
                f"{token!r} is neither a seed (an integer) nor a .npz file of projected latents"
            ) from None
        out.append(seed_latent(G, seed, psi))
    if not out:
        raise UsageError(f"no latents in {text!r}")
    return out


# --------------------------------------------------------------------------------------------------
# Noise maps and rendering
# --------------------------------------------------------------------------------------------------


def noise_layers(G: Generator) -> list[SynthesisLayer]:
    """The synthesis layers with a noise input, in the order of their ws (one map each)."""
    check_stylegan(G)
    layers: list[SynthesisLayer] = []
    for block in G.synthesis.synthesis_blocks():
        layers += [block.conv1] if block.is_first else [block.conv0, block.conv1]
    return layers


@contextlib.contextmanager
def noise_maps(G: Generator, maps: Sequence[Tensor]) -> Iterator[None]:
    """Run G's ``noise_mode="const"`` with ``maps`` in place of its stored constant noise, then restore it.

    As StyleGAN2's projector (Karras et al. 2020, App. D) the maps replace the buffers, so gradients reach them.
    """
    layers = noise_layers(G)
    if len(maps) != len(layers):
        raise ValueError(f"{len(maps)} noise maps for {len(layers)} noise inputs")
    saved = [layer.noise_const for layer in layers]
    try:
        for layer, m in zip(layers, maps, strict=True):
            layer.noise_const = m.to(saved[0].device)
        yield
    finally:
        for layer, m in zip(layers, saved, strict=True):
            layer.noise_const = m


def synthesize_ws(G: Generator, ws: Tensor, noise: str | Sequence[Tensor] = "const") -> Tensor:
    """G's volume ``[1, C, *spatial]`` for ws ``[num_ws, w_dim]`` (or ``[1, num_ws, w_dim]``, or one w
    ``[w_dim]`` for every layer).

    ``noise``: ``const`` (G's stored maps), ``none`` (no noise), or explicit maps (a projection's).
    """
    ws = (ws.expand(G.num_ws, -1) if ws.ndim == 1 else ws).reshape(1, G.num_ws, G.w_dim)
    if isinstance(noise, str):
        if noise not in ("const", "none"):
            raise ValueError(f"noise must be const|none or a list of maps, got {noise!r}")
        return G.synthesis(ws, noise_mode=noise)
    with noise_maps(G, noise):
        return G.synthesis(ws, noise_mode="const")


@torch.no_grad()
def render(G: Generator, ws: Tensor, noise: str | Sequence[Tensor] = "const") -> np.ndarray:
    """One volume ``[*spatial]`` (first channel, float32 numpy); one at a time, so equal ws give equal bits."""
    return synthesize_ws(G, ws, noise)[0, 0].float().cpu().numpy()


def latent_noise(latent: Latent, mode: str) -> str | list[Tensor]:
    """The noise to render a latent with: ``latent`` uses its projected maps when it has them, else const."""
    if mode not in NOISE_MODES:
        raise ValueError(f"noise must be one of {'|'.join(NOISE_MODES)}, got {mode!r}")
    if mode == "latent":
        return latent.noise if latent.noise is not None else "const"
    return mode


# --------------------------------------------------------------------------------------------------
# Volumes in the dataset's geometry and units
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Where a volume's voxels are (affine, spacing) and how [-1, 1] maps back to units (lo, hi, unit)."""

    affine: np.ndarray
    spacing: tuple[float, float, float]
    lo: float | None = None
    hi: float | None = None
    unit: str = "[-1, 1]"

    @classmethod
    def of_dataset(cls, manifest: Manifest | None) -> Geometry:
        """The dataset's geometry and intensity range (its median range for percentile presets); without a
        manifest, 1 mm voxels and [-1, 1] values."""
        from medgan3d.data.io import spacing_affine

        if manifest is None:
            return cls(spacing_affine((1.0, 1.0, 1.0)), (1.0, 1.0, 1.0))
        info = manifest.intensity
        return cls(manifest.affine_array, manifest.spacing, info.lo, info.hi, info.unit)

    @classmethod
    def of_item(cls, info: dict[str, Any], unit: str = "") -> Geometry:
        """One preprocessed scan's geometry and its own intensity range (``preprocess``'s item info)."""
        lo, hi = info["intensity_range"]
        return cls(
            np.asarray(info["affine"], dtype=np.float64), _triple(info["spacing"]), float(lo), float(hi), unit
        )

    def to_units(self, volume: np.ndarray) -> np.ndarray:
        if self.lo is None or self.hi is None:
            return np.asarray(volume, dtype=np.float32)
        from medgan3d.data.preprocess import denormalize_values

        return np.asarray(denormalize_values(volume, self.lo, self.hi), dtype=np.float32)

    def write(self, path: Path, volume: np.ndarray, synthetic: SyntheticInfo | None = None) -> Path:
        """Float32 NIfTI in the data's units with this affine, written under a temp name and renamed; a
        ``synthetic`` one is marked so (descrip, JSON sidecar: :func:`medgan3d.generate.write_synthetic`)."""
        from medgan3d.data import write_nifti

        if synthetic is not None:
            from medgan3d.generate import write_synthetic

            return write_synthetic(path, volume, synthetic, affine=self.affine, spacing=self.spacing)[0]
        values = self.to_units(volume)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda p: write_nifti(p, values, affine=self.affine))
        return path


def _triple(values: Sequence[float]) -> tuple[float, float, float]:
    a, b, c = (float(v) for v in values)
    return a, b, c


def load_stylegan(run: str | os.PathLike[str], device: str = "cpu") -> Generator:
    """G_ema of a run's newest intact checkpoint (or of a checkpoint / saved generator), frozen, in eval mode."""
    from medgan3d.training.checkpoint import load_generator

    G = load_generator(run, device=device)
    check_stylegan(G, str(run))
    if G.spatial_dims != 3:
        raise ValueError(f"{run}: a {G.spatial_dims}D generator; these tools work on 3D volumes")
    return G.eval().requires_grad_(False)
