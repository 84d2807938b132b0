"""GAN inversion for StyleGAN2 volumes: find the w (or ws) and noise maps whose volume matches a target.

The schedule is StyleGAN2's projector (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020, §5 and App. D; code: NVlabs/stylegan2-ada-pytorch ``projector.py``), which Hong et al.'s 3D-StyleGAN
(DGM4MICCAI 2021, ``projector.py``) carried to 3D:

* w starts at the mean of 10 000 mapped z (seed 123); ``w_std = sqrt(Σ‖w − w_avg‖² / N)`` scales the w-noise;
* Adam (0.9, 0.999); lr = lr0 · min(1, t/0.05) · ½(1 − cos(π·min(1, (1 − t)/0.25))), t = step/steps;
* every step w gets N(0, σ_t²) with σ_t = w_std · 0.05 · max(0, 1 − t/0.75)²;
* the noise maps are optimised too and renormalised to zero mean and unit variance after every step;
* the noise regulariser (:func:`noise_regularizer`, the N-D form of the 2D one) is added with a weight.

Two things differ from both references on purpose. 3D-StyleGAN computes the noise regulariser and never adds
it, so ~2 M free noise voxels at 2 mm can carry the reconstruction: here it is on by default. The 2D data term
(VGG16 LPIPS on 256² images) has no 3D analogue, so the data term is a weighted sum of voxel terms
(:data:`LOSS_PRESETS`); ``3dstylegan`` reproduces the published projector (lr0 0.3, MSE + 8×-pooled MSE on
[0, 255], no regulariser).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from medgan3d.latents import noise_layers, noise_maps

if TYPE_CHECKING:
    from medgan3d.networks.stylegan import Generator

# Weighted data terms: mse / pooled_mse / ssim on [-1, 1]; mse255 / pooled_mse255 on 3D-StyleGAN's [0, 255].
LOSS_PRESETS: dict[str, dict[str, float]] = {
    "mse": {"mse": 1.0},
    "ms-mse": {"mse": 1.0, "pooled_mse": 1.0},
    "ssim": {"ssim": 1.0},
    "mse-ssim": {"mse": 1.0, "ssim": 0.1},
    "3dstylegan": {"mse255": 1.0, "pooled_mse255": 1.0},
}
LOSS_TERMS = ("mse", "pooled_mse", "ssim", "mse255", "pooled_mse255")
SPACES = ("w", "w+")
NOISE = ("optimize", "const", "none")

# StyleGAN2's weight, re-tuned for the voxel terms on [-1, 1] by experiments/noise_reg_sweep.py: with every
# noise strength at 0.3 the maps carry 69 dB of PSNR unregularised, 9.5 dB at 1e3 and 0.25 dB at 1e5; on the
# demo's trained model 1e5 costs 0.08 dB (docs/stylegan-tools.md, "Noise regulariser").
DEFAULT_NOISE_REG = 1e5


@dataclass(frozen=True)
class ProjectorConfig:
    """Settings of one projection (recorded in metrics.json); defaults are StyleGAN2's schedule.

    ``space``: ``w`` (one w for every layer, as both references) or ``w+`` (one per layer). ``noise``:
    ``optimize`` (seeded N(0, 1) maps, optimised), ``const`` (the generator's stored maps, fixed) or ``none``.
    ``loss``: a :data:`LOSS_PRESETS` name or ``{term: weight}``. ``noise_reg_min``: the regulariser stops
    pooling a map once its smallest side is at most this (8 in 2D StyleGAN2, 10 in 3D-StyleGAN).
    ``pool``: the pooling factor of the ``pooled_*`` terms (8 in 3D-StyleGAN).
    """

    steps: int = 1000
    space: str = "w"
    loss: str | Mapping[str, float] = "mse-ssim"
    lr: float = 0.1
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    w_noise: float = 0.05
    w_noise_ramp: float = 0.75
    noise: str = "optimize"
    noise_reg: float = DEFAULT_NOISE_REG
    noise_reg_min: int = 8
    pool: int = 8
    w_avg_samples: int = 10_000
    w_avg_seed: int = 123
    seed: int = 0
    snapshots: int = 10

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {'|'.join(SPACES)}, got {self.space!r}")
        if self.noise not in NOISE:
            raise ValueError(f"noise must be one of {'|'.join(NOISE)}, got {self.noise!r}")
        if self.steps < 1 or self.w_avg_samples < 1 or self.snapshots < 0 or self.pool < 1:
            raise ValueError("steps, w_avg_samples and pool must be >= 1, snapshots >= 0")
        if self.lr <= 0 or self.noise_reg < 0 or self.w_noise < 0:
            raise ValueError("lr must be > 0, noise_reg and w_noise >= 0")
        self.weights()  # unknown loss names and terms fail here, before any work

    def weights(self) -> dict[str, float]:
        """``{term: weight}`` of the data term."""
        if isinstance(self.loss, str):
            if self.loss not in LOSS_PRESETS:
                raise ValueError(f"loss must be one of {'|'.join(LOSS_PRESETS)}, got {self.loss!r}")
            return dict(LOSS_PRESETS[self.loss])
        weights = {str(k): float(v) for k, v in self.loss.items()}
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown or not weights:
            raise ValueError(f"loss terms {unknown or '{}'} unknown; choose from {', '.join(LOSS_TERMS)}")
        return weights

    @classmethod
    def named(cls, loss: str = "mse-ssim", **overrides: Any) -> ProjectorConfig:
        """The settings of a loss preset; ``3dstylegan`` also takes the published lr0 0.3, no regulariser
        and its stop size 10. ``overrides`` set by the caller (``None`` values ignored) win."""
        base: dict[str, Any] = {"loss": loss}
        if loss == "3dstylegan":
            base |= {"lr": 0.3, "noise_reg": 0.0, "noise_reg_min": 10}
        return cls(**(base | {k: v for k, v in overrides.items() if v is not None}))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["loss"] = self.loss if isinstance(self.loss, str) else dict(self.loss)
        data["weights"] = self.weights()
        return data


# --------------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------------


def learning_rate(step: int, steps: int, lr0: float, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """StyleGAN2's projector lr: linear warm-up over ``rampup`` of the steps, cosine fall over ``rampdown``."""
    t = step / steps
    down = 0.5 - 0.5 * math.cos(math.pi * min(1.0, (1.0 - t) / rampdown))
    return lr0 * down * min(1.0, t / rampup)


def w_noise_scale(step: int, steps: int, w_std: float, factor: float = 0.05, ramp: float = 0.75) -> float:
    """σ of the noise added to w: ``w_std · factor · max(0, 1 − t/ramp)²``, gone from ``t = ramp`` on."""
    return w_std * factor * max(0.0, 1.0 - (step / steps) / ramp) ** 2


def snapshot_steps(steps: int, count: int) -> list[int]:
    """``count`` evenly spaced steps from 0, and always the last one (none when ``count`` is 0)."""
    if count <= 0:
        return []
    return sorted({round(i * steps / count) for i in range(count)} | {steps - 1})


# --------------------------------------------------------------------------------------------------
# Noise regulariser and data terms
# --------------------------------------------------------------------------------------------------


def noise_regularizer(maps: Sequence[Tensor], min_size: int = 8) -> Tensor:
    """Σ over maps, scales and axes of (mean(n ⊙ roll(n, 1, axis)))², pooling each map by 2 until its smallest
    side is at most ``min_size`` (Karras et al. 2020, App. D; any number of spatial dims).

    Each map is ``[*spatial]``. In 2D with square maps this is StyleGAN2's formula exactly; 3D-StyleGAN stops
    on the first side only, which differs from the smallest side for anisotropic maps.
    """
    total = maps[0].new_zeros(())
    for m in maps:
        x = m[None, None]
        nd = m.ndim
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nd - 1]
        while True:
            for axis in range(2, 2 + nd):
                total = total + (x * torch.roll(x, shifts=1, dims=axis)).mean().square()
            if min(x.shape[2:]) <= min_size:
                break
            x = pool(x, kernel_size=2)
    return total


def pool_factor(shape: Sequence[int], pool: int) -> int:
    """The pooling of the ``pooled_*`` terms: ``pool``, or the smallest side when the volume is smaller."""
    return max(1, min(pool, *shape))


def data_terms(rec: Tensor, target: Tensor, weights: Mapping[str, float], pool: int = 8) -> dict[str, Tensor]:
    """Each weighted term's value (unweighted) for ``[1, C, *spatial]`` volumes in [-1, 1]."""
    from medgan3d.metrics.msssim import msssim_config, ssim_components

    nd = rec.ndim - 2
    avg = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[nd - 1]
    k = pool_factor(rec.shape[2:], pool)
    terms: dict[str, Tensor] = {}
    for name in weights:
        a, b = (rec, target) if not name.endswith("255") else ((rec + 1) * 127.5, (target + 1) * 127.5)
        if name.startswith("pooled_"):
            a, b = avg(a, k), avg(b, k)
        if name == "ssim":
            cfg = msssim_config(rec.shape[2:], max_scales=1)
            terms[name] = 1.0 - ssim_components(rec, target, cfg)[0].mean()
        else:
            terms[name] = F.mse_loss(a, b)
    return terms


# --------------------------------------------------------------------------------------------------
# w statistics and the projection
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def w_statistics(
    G: Generator, samples: int = 10_000, seed: int = 123, chunk: int = 2_000
) -> tuple[Tensor, float]:
    """Mean w of ``samples`` seeded z and the scalar spread sqrt(Σ‖w − w_avg‖² / N) (both references).

    3D-StyleGAN divides inside the sum because its mapping ran in fp16; float64 sums make that unnecessary.
    """
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    ws = torch.cat(
        [
            G.mapping(torch.randn(min(chunk, samples - i), G.z_dim, generator=gen).to(device))[:, 0]
            for i in range(0, samples, chunk)
        ]
    ).double()
    w_avg = ws.mean(dim=0)
    w_std = float((ws - w_avg).square().sum() / samples) ** 0.5
    return w_avg.float(), w_std


@dataclass
class Projection:
    """The result: ws ``[num_ws, w_dim]`` (w ``[w_dim]`` in W space), the noise maps, the trace."""

    ws: Tensor
    w: Tensor | None
    noise: list[Tensor] | None  # the optimised maps, the generator's for ``const``, None for ``none``
    history: list[dict[str, float]]
    w_std: float
    config: ProjectorConfig
    seconds: float

    @property
    def render_noise(self) -> str | list[Tensor]:
        """What :func:`medgan3d.latents.render` needs to rebuild the reconstruction."""
        return self.noise if self.noise is not None else "none"


def _initial_noise(G: Generator, mode: str, gen: torch.Generator) -> list[Tensor] | None:
    device = next(G.parameters()).device
    layers = noise_layers(G)
    if mode == "none":
        return None
    if mode == "const":
        return [layer.noise_const.detach().clone() for layer in layers]
    return [
        torch.randn(tuple(layer.resolution), generator=gen).to(device).requires_grad_(True)
        for layer in layers
    ]


@torch.no_grad()
def _renormalize(maps: Sequence[Tensor]) -> None:
    for m in maps:
        m -= m.mean()
        m *= m.square().mean().rsqrt()


Snapshot = Callable[[int, Tensor], None]


def project_volume(
    G: Generator,
    target: Tensor,
    cfg: ProjectorConfig | None = None,
    stats: tuple[Tensor, float] | None = None,
    on_step: Callable[[int], None] | None = None,
    snapshot: Snapshot | None = None,
) -> Projection:
    """Project one target ``[1, C, *spatial]`` (or ``[*spatial]``) in [-1, 1] into G's W (or W+) space.

    ``stats`` (w_avg, w_std) saves recomputing them for a batch of scans; ``on_step(step)`` runs after every
    step (a progress bar), ``snapshot(step, volume)`` at :func:`snapshot_steps` with the current volume.
    """
    cfg = cfg or ProjectorConfig()
    G = copy.deepcopy(G).float().eval().requires_grad_(False)  # the noise buffers are swapped on this copy
    device = next(G.parameters()).device
    target = target.reshape(1, *G.img_shape).to(device=device, dtype=torch.float32)
    w_avg, w_std = stats if stats is not None else w_statistics(G, cfg.w_avg_samples, cfg.w_avg_seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rows = 1 if cfg.space == "w" else G.num_ws
    w_opt = w_avg.to(device).reshape(1, 1, -1).repeat(1, rows, 1).requires_grad_(True)
    maps = _initial_noise(G, cfg.noise, gen)
    optimized = [w_opt] + (maps if cfg.noise == "optimize" and maps is not None else [])
    opt = torch.optim.Adam(optimized, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
    weights, marks = cfg.weights(), set(snapshot_steps(cfg.steps, cfg.snapshots))
    every = max(1, cfg.steps // 100)
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    for step in range(cfg.steps):
        lr = learning_rate(step, cfg.steps, cfg.lr, cfg.lr_rampup, cfg.lr_rampdown)
        for group in opt.param_groups:
            group["lr"] = lr
        sigma = w_noise_scale(step, cfg.steps, w_std, cfg.w_noise, cfg.w_noise_ramp)
        w_in = w_opt + torch.randn(w_opt.shape, generator=gen).to(device) * sigma
        rec = _synthesize(G, w_in.expand(1, G.num_ws, -1), maps)
        terms = data_terms(rec, target, weights, cfg.pool)
        dist = cast(Tensor, sum(weights[k] * v for k, v in terms.items()))
        reg = (
            noise_regularizer(maps, cfg.noise_reg_min)
            if cfg.noise == "optimize" and cfg.noise_reg > 0 and maps is not None
            else None
        )
        loss = dist if reg is None else dist + cfg.noise_reg * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cfg.noise == "optimize" and maps is not None:
            _renormalize(maps)
        if step % every == 0 or step == cfg.steps - 1:
            row = {"step": step, "lr": lr, "w_noise": sigma, "loss": loss.item(), "dist": dist.item()}
            row |= {k: v.item() for k, v in terms.items()} | (
                {"noise_reg": reg.item()} if reg is not None else {}
            )
            history.append(row)
        if snapshot is not None and step in marks:
            snapshot(step, rec.detach())
        if on_step is not None:
            on_step(step)
    ws = w_opt.detach()[0].expand(G.num_ws, -1).clone()
    w = w_opt.detach()[0, 0].clone() if cfg.space == "w" else None
    noise = [m.detach().clone() for m in maps] if maps is not None else None
    return Projection(ws, w, noise, history, w_std, cfg, time.perf_counter() - start)


def _synthesize(G: Generator, ws: Tensor, maps: Sequence[Tensor] | None) -> Tensor:
    if maps is None:
        return G.synthesis(ws, noise_mode="none")
    with noise_maps(G, maps):
        return G.synthesis(ws, noise_mode="const")
