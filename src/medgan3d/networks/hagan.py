"""HA-GAN networks (Sun et al., "Hierarchical Amortized GAN for 3D High Resolution Medical Image Synthesis",
IEEE JBHI 26(8), 2022; layer sizes as in its public code, github.com/batmanlab/HA-GAN at 1d4f226; docs/hagan.md).

G = G^A (common block: z → ``h_latent``) → {G^L (low-res full volume), sub-volume selector → G^H (high-res)};
D = (D^H(sub-volume, position) + D^L(low-res volume)) / 2; E^H (image → latent features) and E^G (latent
features → z). Tensors are ``[N, C, D, H, W]``; the sub-volume is taken along D, the first spatial axis.

Generalisation (the published model exists at R = 128 and 256 with ``width`` w = 64; both are reproduced exactly,
parameter for parameter). Every channel count is the published one times w/64; the resolution only changes
how many resampling stages there are:

* G^A: fc → 8w·4³, then convs 8w, 8w, 4w, 2w, w (+ extra w-wide convs above R = 256); the first conv never
  upsamples, each later one upsamples ×2 while the size is below R/4. G^L, G^H, E^H do not depend on R.
* D^H: strided stages whose widths double towards the head, ``8w >> j`` for the j-th stage from the last;
  the last three (kernel (2,4,4), (2,4,4), (1,4,4)) are fixed, k4s2 stages are added before them, one per
  octave, until the input (1, R/8, R, R) is reached: log2(R) − 2 stages in all, then a (1,4,4) conv to 2w
  features, the position scalar, fc 2w+1 → w → 1.
* D^L and E^G: k4s2 stages ``4w >> j`` (j-th from the last), log2(R/16) of them, down to 4³, then a k4 conv
  to 1 logit (D^L) or ``latent_dim`` (E^G).

This is the published rule "the first layer is missing at 128" run in both directions; it also gives the
paper's 32³ and 64³ parameter totals (74.7 M and 78.7 M) without adjustment.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from medgan3d.modeling import PretrainedMixin
from medgan3d.networks.shapes import assert_shape

GN_GROUPS = 8
LRELU_SLOPE = 0.2
BASE_SIZE = 4  # G^A's fc output is 8w × 4³; D^L and E^G go down to 4³ before their last conv


def _check_resolution(resolution: int) -> int:
    if not isinstance(resolution, int) or resolution < 32 or resolution & (resolution - 1):
        raise ValueError(f"HA-GAN resolution must be a power of two >= 32, got {resolution!r}")
    return resolution


def _check_groups(network: str, width: int, channels: list[int]) -> None:
    """GroupNorm(8, C) as published: every normalised channel count must be a positive multiple of 8."""
    bad = sorted({c for c in channels if c <= 0 or c % GN_GROUPS})
    if bad:
        raise ValueError(
            f"{network}: width={width} gives GroupNorm channel counts {bad} not divisible by {GN_GROUPS}; "
            "use a width that is a multiple of 32 (64 is the published one)"
        )


def _down_widths(top: int, stages: int) -> list[int]:
    """Widths of ``stages`` strided stages ending at ``top`` and halving towards the input (never below 1)."""
    return [max(1, top >> j) for j in reversed(range(stages))]


# --------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _fold_matrix(device: torch.device, dtype: torch.dtype) -> Tensor:
    """(64, 27) map from a 3³ kernel to the 4³ stride-2 transposed-conv kernel of "nearest ×2 then conv3".

    Per axis, nearest ×2 then taps (k0, k1, k2) at offsets (−1, 0, +1) gives even outputs k0·x[j−1] + (k1+k2)·x[j]
    and odd outputs (k0+k1)·x[j] + k2·x[j+1]: a transposed conv (stride 2, padding 1) with kernel
    (k2, k1+k2, k0+k1, k0). The 3D kernel is the outer product of that map on every axis.
    """
    axis = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=dtype, device=device)
    return torch.einsum("ai,bj,ck->abcijk", axis, axis, axis).reshape(64, 27)


class UpConv3d(nn.Conv3d):
    """Nearest ×2 upsampling then a 3³ conv (padding 1): the published G's ``up2`` + ``tp_conv`` pair.

    Parameters are those of the plain ``Conv3d``. With ``fused`` the pair runs as one exactly equivalent
    transposed conv (stride 2, 4³ kernel folded from the 3³ one), 64 instead of 216 multiply-adds per input
    voxel and channel pair and no 8× upsampled copy of the input kept for backward: 2–3× faster fp32 on CPU
    from 8³ inputs up, but slower on 4³ ones (where folding the weight costs more than it saves).
    """

    def __init__(self, in_channels: int, out_channels: int, fused: bool = True) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1)
        self.fused = fused

    def folded_weight(self) -> Tensor:
        out_c, in_c = self.weight.shape[:2]
        fold = _fold_matrix(self.weight.device, self.weight.dtype)
        return (self.weight.reshape(out_c * in_c, 27) @ fold.T).view(out_c, in_c, 4, 4, 4).transpose(0, 1)

    def forward(self, x: Tensor) -> Tensor:
        if self.fused:
            return F.conv_transpose3d(x, self.folded_weight(), self.bias, stride=2, padding=1)
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class ConvNormReLU(nn.Module):
    """conv → GroupNorm(8, C) → ReLU, the unit of the published G and encoders."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.conv = conv
        self.norm = nn.GroupNorm(GN_GROUPS, conv.out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu_(self.norm(self.conv(x)))  # in place: GN's backward needs its input, not its output


def _conv3(in_channels: int, out_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, 3, padding=1)


def _conv_k4s2(in_channels: int, out_channels: int) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, 4, stride=2, padding=1)


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------


class CommonBlock(nn.Module):
    """G^A: z → fc (no activation) → 8w × 4³ → conv blocks → ``h_latent`` (w × (R/4)³), ends in ReLU."""

    def __init__(self, resolution: int, latent_dim: int, width: int) -> None:
        super().__init__()
        widths = [8 * width, 8 * width, 4 * width, 2 * width, width]
        widths += [width] * max(0, int(math.log2(resolution // 4 // BASE_SIZE)) - 4)
        self.base_channels = widths[0]
        self.fc = nn.Linear(latent_dim, widths[0] * BASE_SIZE**3)
        blocks, size, in_c = [], BASE_SIZE, widths[0]
        for i, out_c in enumerate(widths):
            up = i > 0 and size < resolution // 4
            # the fold only pays from 8³ inputs up (measured on CPU); 4³ keeps the plain upsample + conv
            conv = UpConv3d(in_c, out_c, fused=size >= 8) if up else _conv3(in_c, out_c)
            blocks.append(ConvNormReLU(conv))
            size, in_c = size * 2 if up else size, out_c
        self.blocks = nn.ModuleList(blocks)

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z).view(z.shape[0], self.base_channels, BASE_SIZE, BASE_SIZE, BASE_SIZE)
        for block in self.blocks:
            x = block(x)
        return x


class LowHead(nn.Module):
    """G^L: ``h_latent`` → conv w/2 → conv w/4 → conv 1, tanh, at the latent's size (no upsampling)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.block1 = ConvNormReLU(_conv3(width, width // 2))
        self.block2 = ConvNormReLU(_conv3(width // 2, width // 4))
        self.out = _conv3(width // 4, 1)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.out(self.block2(self.block1(h))))


class HighHead(nn.Module):
    """G^H: latent slab → up2, conv w/2, GN, ReLU → up2, conv 1, tanh (×4 in every spatial axis)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.block = ConvNormReLU(UpConv3d(width, width // 2))
        self.out = UpConv3d(width // 2, 1)

    def forward(self, h: Tensor) -> Tensor:
        return torch.tanh(self.out(self.block(h)))


class HAGANGenerator(PretrainedMixin, nn.Module):
    """G = G^A → {G^L, sub-volume selector → G^H} (Sun et al., HA-GAN, §III-A/B, Fig. 1).

    Training (:meth:`forward`) returns a high-res sub-volume of R/8 slices, made by G^H from R/32 latent slices
    starting at ``latent_start``, and the low-res (R/4)³ volume from G^L. Inference (:meth:`generate`) runs G^H
    over the whole ``h_latent`` (Fig. 2), optionally in exact depth slabs to bound memory.
    """

    def __init__(
        self, resolution: int = 256, latent_dim: int = 1024, width: int = 64, num_class: int = 0
    ) -> None:
        super().__init__()
        R = _check_resolution(resolution)
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be positive, got {latent_dim}")
        # the conditional variant (Sun et al.'s --num-class): a one-hot label concatenated to z
        self.c_dim = num_class
        _check_groups(
            "HAGANGenerator", width, [8 * width, 4 * width, 2 * width, width, width // 2, width // 4]
        )
        self.resolution, self.latent_dim, self.z_dim, self.width = R, latent_dim, latent_dim, width
        self.spatial_dims = 3
        self.img_shape = (1, R, R, R)
        self.latent_shape = (width, R // 4, R // 4, R // 4)
        self.sub_depth = R // 8
        self.latent_sub_depth = R // 32
        self.max_start = R // 4 - R // 32
        self.common_block = CommonBlock(R, latent_dim + num_class, width)
        self.low_head = LowHead(width)
        self.high_head = HighHead(width)

    def common(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """G^A: (B, latent_dim) → ``h_latent`` (B, w, R/4, R/4, R/4); a conditional G takes the one-hot labels
        ``c`` (B, num_class), concatenated to z before the first layer (Sun et al.'s conditional variant)."""
        assert_shape(z, [None, self.latent_dim], "z")
        if self.c_dim:
            if c is None or c.shape[1:] != (self.c_dim,):
                got = "none" if c is None else list(c.shape)
                raise ValueError(
                    f"this network is conditional: it needs one-hot labels c of width {self.c_dim}, got {got}"
                )
            z = torch.cat([z, c.to(z.dtype)], dim=1)
        return self.common_block(z)

    def low(self, h: Tensor) -> Tensor:
        """G^L: ``h_latent`` → low-res volume (B, 1, R/4, R/4, R/4) in [−1, 1]."""
        return self.low_head(h)

    def high(self, h_slab: Tensor) -> Tensor:
        """G^H on a latent slab (B, w, d, h, w') → (B, 1, 4d, 4h, 4w'); GroupNorm statistics of the slab itself."""
        return self.high_head(h_slab)

    def forward(self, z: Tensor, latent_start: int, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Training path: (sub-volume (B, 1, R/8, R, R) from latent slices [s, s + R/32), low-res volume)."""
        if not 0 <= latent_start <= self.max_start:
            raise ValueError(f"latent_start must be in [0, {self.max_start}], got {latent_start}")
        h = self.common(z, c)
        sub = self.high(h[:, :, latent_start : latent_start + self.latent_sub_depth])
        return sub, self.low(h)

    def generate(self, z: Tensor, chunk_depth: int | None = None, c: Tensor | None = None) -> Tensor:
        """Full-resolution volume (B, 1, R, R, R): G^H over the whole ``h_latent``; G^L is skipped (§6)."""
        return self.decode_latent(self.common(z, c), chunk_depth)

    def decode_latent(self, h: Tensor, chunk_depth: int | None = None) -> Tensor:
        """G^H over a whole latent (e.g. an encoder's reconstruction), at once or in exact slabs.

        ``chunk_depth`` latent slices per slab (``None`` or 0: all at once). Chunked, each slab is computed with
        one latent slice of halo on either side (the receptive field of G^H's two 3³ convs at ×2 and ×4 is
        exactly that) and the GroupNorm statistics are global, in two passes: (1) per-(sample, group) mean
        and variance of the first conv's output over every slab's interior, combined exactly; (2) recompute,
        normalise with them, finish the slab and keep its interior. Equal to the whole-volume pass up to
        rounding; peak memory is the output plus one slab's intermediates. Meant for ``torch.no_grad()``.
        """
        depth = h.shape[2]
        if chunk_depth is None or chunk_depth == 0 or chunk_depth >= depth:
            return self.high(h)
        if chunk_depth < 0:
            raise ValueError(f"chunk_depth must be >= 0 or None, got {chunk_depth}")
        head = self.high_head
        slabs = [(a, min(a + chunk_depth, depth)) for a in range(0, depth, chunk_depth)]
        padded = [(a, b, max(a - 1, 0), min(b + 1, depth)) for a, b in slabs]
        # pass 1: exact group statistics of the first conv's output (2 mid-res slices per latent slice)
        batch, groups = h.shape[0], head.block.norm.num_groups
        count, mean = 0, h.new_zeros(batch, groups, dtype=torch.float64)
        m2 = torch.zeros_like(mean)
        for a, b, lo, hi in padded:
            y = head.block.conv(h[:, :, lo:hi])[:, :, 2 * (a - lo) : 2 * (b - lo)]
            var_k, mean_k = torch.var_mean(y.unflatten(1, (groups, -1)), dim=(2, 3, 4, 5), correction=0)
            var_k, mean_k, n_k = var_k.double(), mean_k.double(), y[0, : y.shape[1] // groups].numel()
            delta = mean_k - mean
            total = count + n_k
            mean = mean + delta * (n_k / total)
            m2 = m2 + var_k * n_k + delta.square() * (count * n_k / total)
            count = total
        norm = head.block.norm
        rstd = (m2 / count + norm.eps).rsqrt()
        per_group = head.block.conv.out_channels // groups
        scale = rstd.repeat_interleave(per_group, dim=1) * norm.weight.double()
        shift = norm.bias.double() - mean.repeat_interleave(per_group, dim=1) * scale
        scale, shift = (t.to(h.dtype).view(batch, -1, 1, 1, 1) for t in (scale, shift))
        # pass 2: the output slices [4a, 4b) need the mid-res slices [2a − 1, 2b] only
        out = h.new_empty(batch, 1, 4 * depth, 4 * h.shape[3], 4 * h.shape[4])
        for a, b, lo, hi in padded:
            m0, m1 = max(2 * a - 1, 2 * lo), min(2 * b + 1, 2 * hi)
            y = head.block.conv(h[:, :, lo:hi])[:, :, m0 - 2 * lo : m1 - 2 * lo]
            y = F.relu_(torch.addcmul(shift, y, scale))
            first = 4 * a - 2 * m0
            out[:, :, 4 * a : 4 * b] = torch.tanh(head.out(y)[:, :, first : first + 4 * (b - a)])
        return out

    def param_groups(self) -> dict[str, int]:
        """Parameter counts of G^A, G^L and G^H."""
        return {"G^A": _count(self.common_block), "G^L": _count(self.low_head), "G^H": _count(self.high_head)}


# --------------------------------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------------------------------


def _sn(module: nn.Module) -> nn.Module:
    """Spectral norm (one power iteration per forward in train mode, u/v kept as buffers)."""
    return spectral_norm(module)


class HighDiscriminator(nn.Module):
    """D^H: (1, R/8, R, R) sub-volume → 2w features, + position scalar → fc w → 1 logit (and, conditional,
    ``fc2_class``: w → ``num_class`` class logits)."""

    def __init__(self, resolution: int, width: int, num_class: int = 0) -> None:
        super().__init__()
        tail = [(2, 4, 4), (2, 4, 4), (1, 4, 4)]  # kernels of the last three strided stages (all R)
        n_stages = int(math.log2(resolution)) - 2
        kernels = [(4, 4, 4)] * (n_stages - len(tail)) + tail
        widths = _down_widths(8 * width, n_stages)
        convs, in_c = [], 1
        for k, out_c in zip(kernels, widths, strict=True):
            stride = (1, 2, 2) if k[0] == 1 else 2
            padding = (1 if k[0] == 4 else 0, 1, 1)
            convs.append(_sn(nn.Conv3d(in_c, out_c, k, stride=stride, padding=padding)))
            in_c = out_c
        convs.append(_sn(nn.Conv3d(in_c, 2 * width, (1, 4, 4))))
        self.convs = nn.ModuleList(convs)
        self.fc1 = _sn(nn.Linear(2 * width + 1, width))
        self.fc2 = _sn(nn.Linear(width, 1))
        self.num_class = num_class
        if num_class:
            self.fc2_class = _sn(nn.Linear(width, num_class))

    def forward(self, sub: Tensor, position: Tensor) -> Tensor:
        """(B, 1) logit; conditional: (B, 1 + num_class), the logit then the class logits."""
        x = sub
        for conv in self.convs:
            x = F.leaky_relu_(conv(x), LRELU_SLOPE)
        x = torch.cat([x.flatten(1), position.to(x.dtype).reshape(-1, 1).expand(x.shape[0], 1)], dim=1)
        h = F.leaky_relu_(self.fc1(x), LRELU_SLOPE)
        return torch.cat([self.fc2(h), self.fc2_class(h)], dim=1) if self.num_class else self.fc2(h)


class LowDiscriminator(nn.Module):
    """D^L: (1, R/4, R/4, R/4) → k4s2 stages down to 4³ → k4 conv → 1 logit (conditional: 1 + num_class)."""

    def __init__(self, resolution: int, width: int, num_class: int = 0) -> None:
        super().__init__()
        convs, in_c = [], 1
        for out_c in _down_widths(4 * width, int(math.log2(resolution // 4 // BASE_SIZE))):
            convs.append(_sn(_conv_k4s2(in_c, out_c)))
            in_c = out_c
        self.convs = nn.ModuleList(convs)
        self.out = _sn(nn.Conv3d(in_c, 1 + num_class, BASE_SIZE))

    def forward(self, low: Tensor) -> Tensor:
        x = low
        for conv in self.convs:
            x = F.leaky_relu_(conv(x), LRELU_SLOPE)
        return self.out(x).flatten(1)


class HAGANDiscriminator(PretrainedMixin, nn.Module):
    """D = (D^H(sub-volume, position) + D^L(low-res volume)) / 2: one logit (Sun et al., HA-GAN, §III-B).

    Spectral norm on every conv and linear, LeakyReLU 0.2, no normalisation layers. ``position`` is the
    sub-volume's start slice over the largest start (7R/8), in [0, 1], one per sample (or one for all).

    ``num_class`` > 0 is Sun et al.'s conditional variant (an auxiliary classifier): D^H gains ``fc2_class``,
    D^L's last conv outputs 1 + num_class channels, and :meth:`forward` returns (B, 1 + num_class): the mean
    logit, then the mean class logits of the two.
    """

    def __init__(self, resolution: int = 256, width: int = 64, num_class: int = 0) -> None:
        super().__init__()
        R = _check_resolution(resolution)
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.resolution, self.width, self.spatial_dims = R, width, 3
        self.sub_shape = (1, R // 8, R, R)
        self.low_shape = (1, R // 4, R // 4, R // 4)
        self.num_class = num_class
        self.high = HighDiscriminator(R, width, num_class)
        self.low = LowDiscriminator(R, width, num_class)

    def forward(self, sub: Tensor, low: Tensor, position: Tensor) -> Tensor:
        """(B, 1) logit, the mean of D^H's and D^L's (conditional: (B, 1 + num_class), logit and class logits)."""
        assert_shape(sub, [None, *self.sub_shape], "sub-volume")
        assert_shape(low, [sub.shape[0], *self.low_shape], "low-res volume")
        position = torch.as_tensor(position, device=sub.device)
        return (self.high(sub, position) + self.low(low)) * 0.5

    def param_groups(self) -> dict[str, int]:
        """Parameter counts of D^H and D^L (spectral-norm u, v are buffers, not parameters)."""
        return {"D^H": _count(self.high), "D^L": _count(self.low)}


# --------------------------------------------------------------------------------------------------
# Encoders
# --------------------------------------------------------------------------------------------------


class HAGANEncoder(PretrainedMixin, nn.Module):
    """E^H: image (B, 1, D, H, W) → latent features (B, w, D/4, H/4, W/4), ending in ReLU like ``h_latent``.

    Trained on sub-volumes (R/8 slices → R/32 latent slices, the shape of G's cropped latent); at inference it
    runs on the whole volume (Sun et al., HA-GAN, §III-C, Fig. 2). Independent of the resolution.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        _check_groups("HAGANEncoder", width, [width // 2, width])
        self.width, self.spatial_dims = width, 3
        self.block1 = ConvNormReLU(_conv_k4s2(1, width // 2))
        self.block2 = ConvNormReLU(_conv3(width // 2, width // 2))
        self.block3 = ConvNormReLU(_conv_k4s2(width // 2, width))

    def forward(self, x: Tensor) -> Tensor:
        return self.block3(self.block2(self.block1(x)))


class HAGANLatentEncoder(PretrainedMixin, nn.Module):
    """E^G (published ``Sub_Encoder``): latent features (B, w, R/4, R/4, R/4) → z (B, latent_dim), no activation."""

    def __init__(self, resolution: int = 256, latent_dim: int = 1024, width: int = 64) -> None:
        super().__init__()
        R = _check_resolution(resolution)
        widths = _down_widths(4 * width, int(math.log2(R // 4 // BASE_SIZE)))
        _check_groups("HAGANLatentEncoder", width, widths)
        self.resolution, self.latent_dim, self.width, self.spatial_dims = R, latent_dim, width, 3
        blocks, in_c = [], width
        for out_c in widths:
            blocks.append(ConvNormReLU(_conv_k4s2(in_c, out_c)))
            in_c = out_c
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv3d(in_c, latent_dim, BASE_SIZE)

    def forward(self, h: Tensor) -> Tensor:
        x = h
        for block in self.blocks:
            x = block(x)
        return self.out(x).flatten(1)


def encode_volume(E_H: HAGANEncoder, E_G: HAGANLatentEncoder, x: Tensor) -> tuple[Tensor, Tensor]:
    """Inference encoding (Fig. 2): E^H on the whole volume, then E^G → (``h_latent`` estimate, z estimate)."""
    h_hat = E_H(x)
    return h_hat, E_G(h_hat)


def training_latent_features(E_H: HAGANEncoder, x: Tensor, sub_depth: int) -> Tensor:
    """E^H on the consecutive, non-overlapping ``sub_depth``-slice chunks of ``x``, concatenated along depth.

    What the published E^G step feeds E^G (8 chunks of R/8 slices; GroupNorm statistics per chunk, zero
    padding at chunk borders); the result has the shape of ``h_latent``. The chunks run as one batch, which
    gives the same numbers since GroupNorm is per sample. Call under ``torch.no_grad()`` as published.
    """
    batch, channels, depth = x.shape[:3]
    if sub_depth < 1 or depth % sub_depth:
        raise ValueError(f"depth {depth} is not a multiple of sub_depth {sub_depth}")
    n = depth // sub_depth
    chunks = (
        x.unflatten(2, (n, sub_depth)).transpose(1, 2).reshape(batch * n, channels, sub_depth, *x.shape[3:])
    )
    f = E_H(chunks)
    return f.unflatten(0, (batch, n)).transpose(1, 2).flatten(2, 3)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
