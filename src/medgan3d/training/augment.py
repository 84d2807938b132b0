"""Discriminator augmentation for 2D slices and 3D volumes, fixed or adaptive.

Karras et al., "Training Generative Adversarial Networks with Limited Data" (NeurIPS 2020): every image the
discriminator sees, real or generated, in every phase (its own loss, the generator's, the R1 or gradient
penalty), passes through one differentiable pipeline; each transform is applied to each sample with
probability ``p · multiplier``. With ``p`` below ~0.8 the augmentations do not leak into the generated
distribution (§2.2). The adaptive ``p`` follows the overfitting heuristic ``r_t = E[sign(D(real))]`` (§3,
Eq. 1): every ``interval`` iterations, ``p ← clamp(p + sign(r_t − target) · N / (ada_kimg · 1000), 0, 1)``
with N the images seen since the last adjustment, so that p can go from 0 to 1 in ``ada_kimg`` thousand
images (500 in the paper, App. C).

The transforms follow the paper's pipeline (App. B, Fig. 2), generalised to any number of spatial axes and cut
to what suits grayscale scans:

* geometric (composed into one affine map, one resampling with trilinear/bilinear interpolation and
  reflection padding): flips along chosen axes, 90° rotations in chosen planes, integer translation
  (±1/8 of the size), isotropic scaling (log2 s ~ N(0, 0.2²)), rotation (uniform angle in one chosen plane),
  anisotropic scaling (per-axis log2 scales ~ N(0, 0.2²), volume-preserving), fractional translation
  (N(0, 0.125²) of the size). The paper upsamples with a wavelet filter before resampling; here the volume
  is resampled directly (cheaper; slight blur on fractional maps).
* intensity: brightness (+N(0, 0.2²)), contrast (× 2^N(0, 0.5²), about 0, the middle of the [-1, 1] range),
  a gamma-like curve on (x+1)/2 (exponent 2^N(0, 0.25²); not in the paper, which has luma flip, hue and
  saturation for colour images instead), additive Gaussian noise (σ ~ |N(0, 0.1²)|), cutout (a box of half
  the size per axis set to 0).

Which transforms may occur is a preset (:data:`PRESETS`): e.g. ``laterality`` never mirrors (a reflection
turns left into right, and a flip along any axis composed with a 180° rotation is a left-right flip),
``in-plane`` rotates, flips and scales only in the axial plane, for anisotropic scans with thick slices.

Everything stays on the device: masks are drawn with ``torch.rand(...) < p``, never branched on in Python,
and the adaptive state (p, the running sum of signs) is read once per tick for logging.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
INTENSITY = ("brightness", "contrast", "gamma", "noise", "cutout")
TRANSFORMS = GEOMETRIC + INTENSITY
MODES = ("none", "ada", "fixed", "diffaugment")
REAL_SIGN = "real_sign"  # PhaseResult.side key: mean of sign(D(real)) (Wasserstein critics: of D(real) - mean D(fake))

# The paper's default strengths (Karras et al. 2020, App. B) and ours for the grayscale intensity group
XINT_MAX, SCALE_STD, ROTATE_MAX, ANISO_STD, XFRAC_STD = 0.125, 0.2, 1.0, 0.2, 0.125
BRIGHTNESS_STD, CONTRAST_STD, GAMMA_STD, NOISE_STD, CUTOUT_SIZE = 0.2, 0.5, 0.25, 0.1, 0.5
GAMMA_EPS = 1e-3  # below it the gamma curve continues linearly (finite gradient at the background)

AXES = {2: ("H", "W"), 3: ("D", "H", "W")}  # spatial axes of [N, C, *spatial]; W is left-right


@dataclass(frozen=True)
class AugmentSpec:
    """Which transforms may occur and on which axes: multipliers of p, axes by name (``D``, ``H``, ``W``)."""

    multipliers: dict[str, float]
    flip_axes: tuple[str, ...]  # axes along which a flip may occur (each one independently)
    planes: tuple[tuple[str, str], ...]  # planes of the 90° rotations and of the free rotations
    scale_axes: tuple[str, ...]  # axes that isotropic/anisotropic scaling and fractional translation act on

    def __post_init__(self) -> None:
        unknown = set(self.multipliers) - set(TRANSFORMS)
        if unknown:
            raise ValueError(f"unknown augmentations {sorted(unknown)}; known: {list(TRANSFORMS)}")
        if any(not (0 <= m < float("inf")) for m in self.multipliers.values()):
            raise ValueError("augmentation multipliers must be numbers >= 0")


def _all_planes(axes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((a, b) for i, a in enumerate(axes) for b in axes[i + 1 :])


def preset_spec(name: str, spatial_dims: int) -> AugmentSpec:
    """The transforms of preset ``name`` (see :data:`PRESETS`) for 2D or 3D data."""
    if name not in PRESETS:
        raise ValueError(f"augmentation preset {name!r} not in {sorted(PRESETS)}")
    if spatial_dims not in AXES:
        raise ValueError(f"augmentation works on 2 or 3 spatial axes, not {spatial_dims}")
    axes = AXES[spatial_dims]
    in_plane = (axes[-2], axes[-1])  # the axial plane (H, W)
    every = dict.fromkeys(TRANSFORMS, 1.0)
    intensity = dict.fromkeys(INTENSITY, 1.0)
    if name == "all":
        return AugmentSpec(every, axes, _all_planes(axes), axes)
    if name == "laterality":  # proper motions only: no reflection can turn left into right
        return AugmentSpec({k: v for k, v in every.items() if k != "xflip"}, (), _all_planes(axes), axes)
    if name == "in-plane":
        return AugmentSpec(every, in_plane, (in_plane,), in_plane)
    if name == "intensity":
        return AugmentSpec(intensity, (), (), ())
    # diffaugment: Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training" (NeurIPS 2020),
    # policy "color,translation,cutout" with this pipeline's grayscale transforms, always applied (p = 1)
    return AugmentSpec({"brightness": 1.0, "contrast": 1.0, "xint": 1.0, "cutout": 1.0}, (), (), axes)


PRESETS = {
    "all": "every transform, flips along and rotations in every axis/plane (isotropic data, no laterality)",
    "laterality": "every transform except reflections (rotations only), where left and right differ",
    "in-plane": "flips, rotations and scaling only in the axial plane (anisotropic data, thick slices)",
    "intensity": "brightness, contrast, gamma, noise and cutout only (no geometric transform)",
    "diffaugment": "brightness, contrast, integer translation and cutout (the DiffAugment policy)",
}


def parse_mode(text: str) -> tuple[str, float]:
    """``ada`` | ``fixed:P`` | ``diffaugment`` | ``none`` → (mode, initial p); a ValueError says what is wrong."""
    text = str(text).strip()
    if text in ("none", "ada", "diffaugment"):
        return text, {"none": 0.0, "ada": 0.0, "diffaugment": 1.0}[text]
    if text.startswith("fixed:"):
        try:
            p = float(text.split(":", 1)[1])
        except ValueError:
            p = float("nan")
        if not 0 <= p <= 1:
            raise ValueError(f"aug {text!r}: fixed:P needs a probability P in [0, 1]")
        return "fixed", p
    raise ValueError(f"aug {text!r} is not one of ada, fixed:P (P in [0, 1]), diffaugment, none")


# ---------------------------------------------------------------------------------- affine building blocks
# Matrices are homogeneous, [N, n+1, n+1] over the spatial axes in tensor order, in voxel units about the
# volume's centre, and map an OUTPUT position to the INPUT position it samples (the inverse transform).


def identity(n: int, count: int, device: torch.device | None = None) -> Tensor:
    return torch.eye(n + 1, device=device).expand(count, n + 1, n + 1).clone()


def flip_matrix(flips: Tensor) -> Tensor:
    """``flips``: [N, n] of 0/1; axis i mirrored where 1."""
    m = identity(flips.shape[1], flips.shape[0], flips.device)
    m[:, :-1, :-1] = torch.diag_embed(1 - 2 * flips.float())
    return m


def plane_rotation(angle: Tensor, n: int, plane: tuple[int, int]) -> Tensor:
    """Rotation by ``angle`` [N] (radians) in ``plane`` = (a, b): out[a, b] samples in[b, -a] at 90°
    (the sense of ``torch.rot90(x, 1, dims=(a, b))``)."""
    a, b = plane
    m = identity(n, angle.shape[0], angle.device)
    c, s = torch.cos(angle), torch.sin(angle)
    m[:, a, a], m[:, a, b], m[:, b, a], m[:, b, b] = c, s, -s, c
    return m


def rot90_matrix(k: Tensor, n: int, plane: tuple[int, int]) -> Tensor:
    """Exact quarter turns ``k`` [N] (integers) in ``plane`` (cos/sin rounded to -1, 0, 1)."""
    return plane_rotation(k.float() * (math.pi / 2), n, plane).round()


def translate_matrix(t: Tensor) -> Tensor:
    """``t`` [N, n]: the content moves by +t voxels (the output at u samples the input at u - t)."""
    m = identity(t.shape[1], t.shape[0], t.device)
    m[:, :-1, -1] = -t
    return m


def scale_matrix(s: Tensor) -> Tensor:
    """``s`` [N, n]: the content grows by s along each axis."""
    m = identity(s.shape[1], s.shape[0], s.device)
    m[:, :-1, :-1] = torch.diag_embed(1 / s)
    return m


def warp(x: Tensor, matrix: Tensor) -> Tensor:
    """Resample ``x`` [N, C, *spatial] at ``matrix`` (voxel units, see above): (tri)linear, reflection padding."""
    n = x.dim() - 2
    sizes = torch.tensor(x.shape[2:], dtype=matrix.dtype, device=x.device)
    to_norm = torch.diag_embed(torch.cat([2 / sizes, sizes.new_ones(1)]))  # voxel units -> [-1, 1]
    to_vox = torch.diag_embed(torch.cat([sizes / 2, sizes.new_ones(1)]))
    theta = to_norm @ matrix @ to_vox
    order = list(range(n - 1, -1, -1))  # affine_grid's coordinates run (W, H, D): reverse the tensor order
    theta = theta[:, order][:, :, [*order, n]]
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="reflection", align_corners=False)


# ---------------------------------------------------------------------------------------------- intensity


def gamma_curve(x: Tensor, gamma: Tensor) -> Tensor:
    """u^γ on u = (x+1)/2 (the [-1, 1] range mapped to [0, 1]), linear below ``GAMMA_EPS``; ``gamma`` [N]."""
    g = gamma.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    u = (x + 1) / 2
    curved = u.clamp_min(GAMMA_EPS) ** g
    linear = u * GAMMA_EPS ** (g - 1)
    return torch.where(u > GAMMA_EPS, curved, linear) * 2 - 1


def cutout_mask(shape: tuple[int, ...], centre: Tensor, size: float) -> Tensor:
    """1 outside, 0 inside a box of ``size`` (fraction of each axis) about ``centre`` [N, n] in [0, 1]."""
    n = len(shape) - 2
    mask = torch.ones(shape[0], 1, *shape[2:], device=centre.device)
    for axis in range(n):
        count = shape[2 + axis]
        pos = (torch.arange(count, device=centre.device) + 0.5) / count
        inside = (pos[None] - centre[:, axis, None]).abs() < size / 2  # [N, count]
        view = [shape[0]] + [1] * n
        view[1 + axis] = count
        mask = mask * inside.view(view).unsqueeze(1)
    return 1 - mask


# ---------------------------------------------------------------------------------------------- the pipe


def _per_sample(mask: Tensor, x: Tensor) -> Tensor:
    return mask.view(-1, *([1] * (x.dim() - 1)))


class AugmentPipe:
    """The augmentation of every image D sees, with its probability ``p`` (a device scalar) and, for
    ``mode == "ada"``, the adjustment of p from the signs of D's real logits (Karras et al. 2020, §3)."""

    def __init__(
        self,
        mode: str,
        p: float,
        spec: AugmentSpec,
        spatial_dims: int,
        device: torch.device,
        target: float = 0.6,
        ada_kimg: float = 500.0,
        interval: int = 4,
    ) -> None:
        if mode not in MODES or mode == "none":
            raise ValueError(f"augmentation mode {mode!r} not in {MODES[1:]}")
        self.mode, self.spec, self.spatial_dims = mode, spec, spatial_dims
        self.target, self.ada_kimg, self.interval = float(target), float(ada_kimg), int(interval)
        self.axes = AXES[spatial_dims]
        self.p = torch.tensor(float(p), device=device)
        self.sign_sum = torch.zeros(
            (), device=device
        )  # sum over D phases of the mean sign since the last adjustment
        self.sign_count = torch.zeros((), device=device)
        self.rt = torch.zeros((), device=device)  # the last r_t used for an adjustment
        self.nimg = 0  # images since the last adjustment (host: a pure function of the iteration count)
        self._hooks: list[Any] = []

    # ---------------------------------------------------------------------------------- augmentation

    def _mask(self, name: str, count: int, device: torch.device) -> Tensor:
        return torch.rand(count, device=device) < self.p.to(device) * self.spec.multipliers.get(name, 0.0)

    def _on(self, name: str) -> bool:
        return self.spec.multipliers.get(name, 0.0) > 0

    def __call__(self, x: Tensor) -> Tensor:
        """``x`` [N, C, *spatial] augmented per sample; differentiable with respect to ``x``."""
        n = x.dim() - 2
        if n != self.spatial_dims:
            raise ValueError(
                f"augmentation built for {self.spatial_dims}D data got a {n}D batch {list(x.shape)}"
            )
        geometric = self._geometric(x)
        return self._intensity(geometric)

    def _geometric(self, x: Tensor) -> Tensor:
        N, n, dev = x.shape[0], x.dim() - 2, x.device
        index = {a: i for i, a in enumerate(self.axes)}
        sizes = torch.tensor(x.shape[2:], dtype=torch.float32, device=dev)
        m, moved = identity(n, N, dev), torch.zeros(N, dtype=torch.bool, device=dev)
        spec = self.spec

        def then(step: Tensor, mask: Tensor) -> None:
            nonlocal m, moved
            eye = identity(n, N, dev)
            m = m @ torch.where(mask.view(N, 1, 1), step, eye)
            moved = moved | mask

        planes = [(index[a], index[b]) for a, b in spec.planes]
        if self._on("xflip") and spec.flip_axes:
            flips = torch.zeros(N, n, device=dev)
            mask = self._mask("xflip", N, dev)
            for a in spec.flip_axes:
                flips[:, index[a]] = torch.randint(0, 2, (N,), device=dev).float()
            then(flip_matrix(flips * mask[:, None]), mask)
        if self._on("rotate90") and planes:
            mask, which = self._mask("rotate90", N, dev), torch.randint(0, len(planes), (N,), device=dev)
            k = torch.randint(0, 4, (N,), device=dev)
            for i, plane in enumerate(planes):
                then(rot90_matrix(k, n, plane), mask & (which == i))
        scale_axes = torch.zeros(n, device=dev)
        for a in spec.scale_axes:
            scale_axes[index[a]] = 1.0
        if self._on("xint"):
            mask = self._mask("xint", N, dev)
            t = ((torch.rand(N, n, device=dev) * 2 - 1) * XINT_MAX * sizes).round()
            then(translate_matrix(t * scale_axes), mask)
        if self._on("scale") and spec.scale_axes:
            mask = self._mask("scale", N, dev)
            log2 = torch.randn(N, 1, device=dev) * SCALE_STD * scale_axes
            then(scale_matrix(torch.exp2(log2)), mask)
        if self._on("rotate") and planes:
            mask, which = self._mask("rotate", N, dev), torch.randint(0, len(planes), (N,), device=dev)
            angle = (torch.rand(N, device=dev) * 2 - 1) * (math.pi * ROTATE_MAX)
            for i, plane in enumerate(planes):
                then(plane_rotation(angle, n, plane), mask & (which == i))
        if self._on("aniso") and len(spec.scale_axes) > 1:
            mask = self._mask("aniso", N, dev)
            log2 = torch.randn(N, n, device=dev) * ANISO_STD * scale_axes
            log2 = log2 - (log2.sum(1, keepdim=True) / scale_axes.sum()) * scale_axes  # product of scales 1
            then(scale_matrix(torch.exp2(log2)), mask)
        if self._on("xfrac") and spec.scale_axes:
            mask = self._mask("xfrac", N, dev)
            then(translate_matrix(torch.randn(N, n, device=dev) * XFRAC_STD * sizes * scale_axes), mask)
        if not moved.shape[0] or not any(self._on(k) for k in GEOMETRIC):
            return x
        return torch.where(_per_sample(moved, x), warp(x, m), x)

    def _intensity(self, x: Tensor) -> Tensor:
        N, dev = x.shape[0], x.device

        def per(values: Tensor) -> Tensor:
            return values.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)

        if self._on("brightness"):
            b = torch.randn(N, device=dev) * BRIGHTNESS_STD
            x = x + per(b * self._mask("brightness", N, dev))
        if self._on("contrast"):
            c = torch.exp2(torch.randn(N, device=dev) * CONTRAST_STD)
            x = x * per(torch.where(self._mask("contrast", N, dev), c, torch.ones_like(c)))
        if self._on("gamma"):
            g = torch.exp2(torch.randn(N, device=dev) * GAMMA_STD)
            x = torch.where(_per_sample(self._mask("gamma", N, dev), x), gamma_curve(x, g), x)
        if self._on("noise"):
            sigma = torch.randn(N, device=dev).abs() * NOISE_STD * self._mask("noise", N, dev)
            x = x + torch.randn_like(x) * per(sigma)
        if self._on("cutout"):
            centre = torch.rand(N, x.dim() - 2, device=dev)
            keep = cutout_mask(tuple(x.shape), centre, CUTOUT_SIZE)
            x = x * torch.where(
                _per_sample(self._mask("cutout", N, dev), keep), keep, torch.ones_like(keep)
            ).to(x.dtype)
        return x

    # ---------------------------------------------------------------------------------- D's inputs

    def install(self, modules: Iterable[nn.Module]) -> None:
        """Augment the first argument of every forward of ``modules`` (the discriminators' image inputs)."""
        for module in modules:
            self._hooks.append(module.register_forward_pre_hook(lambda _m, args: (self(args[0]), *args[1:])))

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    # ---------------------------------------------------------------------------------- adaptive p

    def accumulate(self, mean_sign: Tensor, finite: Tensor | bool = True) -> None:
        """One D phase's mean of sign(D(real)) over its global batch (a device scalar); a phase whose step
        was skipped (``finite`` a false device flag) does not count."""
        if self.mode == "ada":
            ok = torch.as_tensor(finite, device=self.sign_sum.device)
            sign = mean_sign.detach().float().to(self.sign_sum.device)
            self.sign_sum += torch.where(ok, sign, torch.zeros_like(sign))
            self.sign_count += ok.float()

    def end_iteration(self, batch_idx: int, batch: int) -> None:
        """After iteration ``batch_idx`` (0-based) of ``batch`` images: every ``interval`` iterations, move p."""
        if self.mode != "ada":
            return
        self.nimg += batch
        if (batch_idx + 1) % self.interval:
            return
        seen = self.sign_count > 0
        rt = self.sign_sum / self.sign_count.clamp_min(1)
        step = torch.sign(rt - self.target) * (self.nimg / (self.ada_kimg * 1000))
        self.p.copy_((self.p + torch.where(seen, step, torch.zeros_like(step))).clamp(0, 1))
        self.rt.copy_(torch.where(seen, rt, self.rt))
        self.sign_sum.zero_()
        self.sign_count.zero_()
        self.nimg = 0

    def state(self) -> dict[str, Tensor]:
        """What a checkpoint holds to continue bit-identically (the host counter as an int64 tensor)."""
        return {
            "augment.p": self.p.detach().clone(),
            "augment.sign_sum": self.sign_sum.detach().clone(),
            "augment.sign_count": self.sign_count.detach().clone(),
            "augment.rt": self.rt.detach().clone(),
            "augment.nimg": torch.tensor(self.nimg, dtype=torch.int64),
        }

    def load_state(self, tensors: dict[str, Tensor]) -> None:
        for name in ("p", "sign_sum", "sign_count", "rt"):
            getattr(self, name).copy_(tensors[f"augment.{name}"])
        self.nimg = int(tensors["augment.nimg"])

    def log(self) -> dict[str, float]:
        """The per-tick scalars (one device read per tick)."""
        values = torch.stack([self.p, self.rt]).tolist()
        return {"aug/p": values[0], "aug/rt": values[1]} if self.mode == "ada" else {"aug/p": values[0]}


def make_pipe(cfg: Any, spatial_dims: int, device: torch.device) -> AugmentPipe | None:
    """The pipe a :class:`~medgan3d.training.loop.TrainConfig` asks for (``None`` for ``aug: none``)."""
    mode, p = parse_mode(cfg.aug)
    if mode == "none":
        return None
    spec = preset_spec("diffaugment" if mode == "diffaugment" else cfg.aug_preset, spatial_dims)
    return AugmentPipe(mode, p, spec, spatial_dims, device, cfg.ada_target, cfg.ada_kimg)
