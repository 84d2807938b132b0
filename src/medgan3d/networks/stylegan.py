"""StyleGAN2 for ``spatial_dims`` 2 and 3 with the Split&Shuffle variants (Liu et al., arXiv 2208.03934 §3.1, §3.3; Hong et al., DGM4MICCAI 2021).

One implementation serves the 2D twin (pretraining on axial slices) and the 3D model; the 3D model's depth
axis is the first spatial axis (``[N, C, D, H, W]``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from medgan3d.modeling import PretrainedMixin
from medgan3d.networks.layers import (
    D_VARIANTS,
    G_VARIANTS,
    Conv,
    EqualizedLinear,
    MinibatchStd,
    as_shape,
    bias_act,
    channels_last,
    modulated_conv,
    upsample_fir,
)
from medgan3d.networks.shapes import assert_shape


def block_channels(channels: int | Sequence[int], num_blocks: int) -> list[int]:
    """Per-block widths from the base block to the output block (an int means constant width)."""
    if isinstance(channels, int):
        return [channels] * num_blocks
    channels = [int(c) for c in channels]
    if len(channels) != num_blocks:
        raise ValueError(f"channels {channels} must list one width per block ({num_blocks})")
    return channels


def block_shapes(base_shape: Sequence[int], num_blocks: int) -> list[tuple[int, ...]]:
    """Spatial shape of each block: every block doubles every spatial dim of the base."""
    return [tuple(s * 2**i for s in base_shape) for i in range(num_blocks)]


def nearest_generator_shape(shape: Sequence[int], base_shape: Sequence[int]) -> tuple[tuple[int, ...], int]:
    """The shape ``base·2^k`` closest to ``shape`` (smallest largest per-axis scale mismatch), and its k.

    A generator that starts from ``base_shape`` and doubles every axis per block can only produce these
    shapes (Hong et al., 3D-StyleGAN: base 5×6×7 gives 80×96×112 at k = 4 and 160×192×224 at k = 5).
    """
    shape, base = [int(s) for s in shape], [int(b) for b in base_shape]
    if len(shape) != len(base) or min(shape + base) < 1:
        raise ValueError(f"shape {shape} and base {base} must be positive and of the same length")
    top = max(0, math.ceil(max(math.log2(s / b) for s, b in zip(shape, base, strict=True))) + 1)

    def mismatch(k: int) -> float:
        return max(abs(math.log2(s / (b * 2**k))) for s, b in zip(shape, base, strict=True))

    k = min(range(top + 1), key=mismatch)
    return tuple(b * 2**k for b in base), k


def check_generator_shape(shape: Sequence[int], base_shape: Sequence[int], what: str = "volume") -> int:
    """k such that ``shape == base·2^k``; otherwise a ``ValueError`` that names the nearest valid shape."""
    nearest, k = nearest_generator_shape(shape, base_shape)
    if tuple(int(s) for s in shape) == nearest:
        return k
    text = "×".join(str(int(s)) for s in shape)
    raise ValueError(
        f"{what} {text} is not base {'×'.join(map(str, base_shape))} · 2^k, the only shapes this generator "
        f"makes; the nearest is {'×'.join(map(str, nearest))} (k = {k}, {k + 1} blocks): crop/pad or resample "
        f"to it (medgan3d prepare --shape {','.join(map(str, nearest))})"
    )


# --------------------------------------------------------------------------------------------------
# Mapping network
# --------------------------------------------------------------------------------------------------


def normalize_2nd_moment(x: Tensor) -> Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class MappingNetwork(PretrainedMixin, nn.Module):
    """z → w (Liu et al., arXiv 2208.03934 §3.1.1): normalised z, ``num_layers`` lrelu FC layers at lr multiplier 0.01.

    Tracks the running mean ``w_avg`` for the truncation trick; ``truncation_psi`` pulls w towards it for
    the first ``truncation_cutoff`` w vectors (all when ``None``).

    ``c_dim`` > 0 makes it conditional as in StyleGAN2-ADA (Karras et al., "Training Generative Adversarial
    Networks with Limited Data", NeurIPS 2020, App. C): the label vector c goes through a linear embedding of
    width ``w_dim``, is normalised like z and concatenated to it before the first layer. ``z_dim`` 0 maps the
    label alone (the discriminator's label embedding for its projection output).
    """

    w_avg: Tensor  # a buffer

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_ws: int,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
        c_dim: int = 0,
    ) -> None:
        super().__init__()
        if z_dim + c_dim < 1:
            raise ValueError("a mapping network needs z_dim or c_dim")
        self.z_dim, self.w_dim, self.num_ws, self.w_avg_beta = z_dim, w_dim, num_ws, w_avg_beta
        self.c_dim = c_dim
        if c_dim:
            self.embed = EqualizedLinear(c_dim, w_dim)
        dims = [z_dim + (w_dim if c_dim else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(a, b, activation="lrelu", lr_multiplier=lr_multiplier)
            for a, b in itertools.pairwise(dims)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        c: Tensor | None = None,
    ) -> Tensor:
        if self.z_dim:
            assert_shape(z, [None, self.z_dim], "z")
        x = normalize_2nd_moment(z) if self.z_dim else None
        if self.c_dim:
            if c is None or c.shape[1:] != (self.c_dim,):
                got = "none" if c is None else list(c.shape)
                raise ValueError(
                    f"this network is conditional: it needs a label vector c of width {self.c_dim}, got {got}"
                )
            y = normalize_2nd_moment(self.embed(c.to(self.embed.weight.dtype)))
            x = y if x is None else torch.cat([x, y], dim=1)
        assert x is not None, "a mapping network reads z, c or both"
        for layer in self.layers:
            x = layer(x)
        if update_emas:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws


# --------------------------------------------------------------------------------------------------
# Synthesis network
# --------------------------------------------------------------------------------------------------


class SynthesisLayer(nn.Module):
    """Modulated 3^n conv (Eq. 1–2) + noise (B in Fig. 2) + bias + lrelu; optionally ×2 upsampling.

    ``variant="split"`` runs two half-width branches, each modulated/demodulated on its own (Liu et al., arXiv 2208.03934 §3.3,
    Fig. 3) as one grouped conv; ``"split_shuffle"`` interleaves the branches' outputs afterwards.
    """

    noise_const: Tensor  # a buffer

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: Sequence[int],
        spatial_dims: int,
        up: bool = False,
        variant: str = "baseline",
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        if variant not in G_VARIANTS:
            raise ValueError(f"unknown generator variant {variant!r}; expected one of {G_VARIANTS}")
        self.spatial_dims, self.up, self.variant = spatial_dims, up, variant
        self.groups = 1 if variant == "baseline" else 2
        self.resolution = tuple(resolution)
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        k = (kernel_size,) * spatial_dims
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels // self.groups, *k))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(self.resolution))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        styles = self.affine(w)
        x = modulated_conv(
            x, self.weight.to(x.dtype), styles.to(x.dtype), self.spatial_dims, up=self.up, groups=self.groups
        )
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, *self.resolution, device=x.device, dtype=x.dtype)
            x = torch.addcmul(x, noise, self.noise_strength.to(x.dtype))
        elif noise_mode == "const":
            x = x + (self.noise_const * self.noise_strength).to(x.dtype)
        elif noise_mode != "none":
            raise ValueError(f"noise_mode must be random|const|none, got {noise_mode!r}")
        # split_shuffle: the interleaving is written by the bias/activation pass itself (no copy of its own)
        return bias_act(x, self.bias.to(x.dtype), "lrelu", shuffle=self.variant == "split_shuffle")


class ToImage(nn.Module):
    """toRGB: modulated 1^n conv without demodulation, styles scaled by 1/√fan_in (skip architecture)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int, spatial_dims: int) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, *([1] * spatial_dims)))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = (self.affine(w) * self.weight_gain).to(x.dtype)
        x = modulated_conv(x, self.weight.to(x.dtype), styles, self.spatial_dims, demodulate=False)
        return bias_act(x, self.bias.to(x.dtype), "linear")


G_ARCHITECTURES = ("skip", "orig")


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const |  up-conv) + conv [+ toRGB].

    ``to_image`` False leaves the block without a toRGB: the ``orig`` generator (Karras et al., "Analyzing and
    Improving the Image Quality of StyleGAN", CVPR 2020, Fig. 7a; the G of Hong et al.'s 3D-StyleGAN,
    DGM4MICCAI 2021) has one only in its last block, the ``skip`` generator one per block, summed over blocks.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: Sequence[int],
        img_channels: int,
        spatial_dims: int,
        variant: str = "baseline",
        to_image: bool = True,
    ) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.is_first = in_channels == 0
        layer_kw: dict[str, Any] = dict(
            w_dim=w_dim, resolution=resolution, spatial_dims=spatial_dims, variant=variant
        )
        if self.is_first:
            self.const = nn.Parameter(torch.randn(out_channels, *resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=True, **layer_kw)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **layer_kw)
        self.torgb = ToImage(out_channels, img_channels, w_dim, spatial_dims) if to_image else None
        self.num_conv = 1 if self.is_first else 2

    def forward(
        self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str
    ) -> tuple[Tensor, Tensor | None]:
        if self.is_first:
            x = self.const.unsqueeze(0).expand(ws.shape[0], *self.const.shape).to(ws.dtype)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        if self.torgb is None:
            return x, img
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else upsample_fir(img, self.spatial_dims).to(y.dtype) + y
        return x, img


class SynthesisNetwork(PretrainedMixin, nn.Module):
    """w → image: a learned constant of ``base_shape`` then ``num_blocks`` blocks doubling every dim.

    ``architecture``: ``skip`` (StyleGAN2's default: a toRGB per block, images up-sampled and summed) or
    ``orig`` (one toRGB after the last block). Both read the ws in the same order, ``num_ws = 2·num_blocks``:
    block b's convs take w[2b−1], w[2b] (the first block's one conv w[0]) and the toRGB of the last block
    takes the last w; a skip toRGB of an earlier block shares its w with the next block's first conv.
    """

    def __init__(
        self,
        w_dim: int,
        spatial_dims: int,
        base_shape: Sequence[int],
        num_blocks: int,
        channels: int | Sequence[int],
        img_channels: int = 1,
        variant: str = "baseline",
        architecture: str = "skip",
    ) -> None:
        super().__init__()
        if architecture not in G_ARCHITECTURES:
            raise ValueError(
                f"unknown generator architecture {architecture!r}; expected one of {G_ARCHITECTURES}"
            )
        self.spatial_dims, self.architecture = spatial_dims, architecture
        self.base_shape = as_shape(base_shape, spatial_dims)
        widths = block_channels(channels, num_blocks)
        shapes = block_shapes(self.base_shape, num_blocks)
        self.img_shape = (img_channels, *shapes[-1])
        with_image = [architecture == "skip" or i == num_blocks - 1 for i in range(num_blocks)]
        blocks = [
            SynthesisBlock(c_in, c_out, w_dim, res, img_channels, spatial_dims, variant, to_image)
            for c_in, c_out, res, to_image in zip([0, *widths[:-1]], widths, shapes, with_image, strict=True)
        ]
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(b.num_conv for b in blocks) + 1

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        assert_shape(ws, [None, self.num_ws, None], "ws")
        x = img = None
        w_idx = 0
        for block in self.synthesis_blocks():
            x, img = block(x, img, ws[:, w_idx : w_idx + block.num_conv + 1], noise_mode)
            w_idx += block.num_conv
        assert img is not None  # the last block always has a toRGB
        return img

    def synthesis_blocks(self) -> list[SynthesisBlock]:
        """``self.blocks`` with their type (``nn.ModuleList`` items are typed as plain modules)."""
        return list(self.blocks)  # type: ignore[arg-type]  # ModuleList items are typed as nn.Module


class Generator(PretrainedMixin, nn.Module):
    """StyleGAN2 generator: mapping network + synthesis network (Liu et al., arXiv 2208.03934 Fig. 2); ``architecture`` as in
    :class:`SynthesisNetwork` (``orig`` is 3D-StyleGAN's generator, Hong et al. 2021)."""

    def __init__(
        self,
        spatial_dims: int = 3,
        base_shape: Sequence[int] = (2, 4, 4),
        num_blocks: int = 5,
        channels: int | Sequence[int] = 32,
        z_dim: int = 64,
        w_dim: int = 64,
        mapping_layers: int = 8,
        img_channels: int = 1,
        variant: str = "split_shuffle",
        mapping_lr_multiplier: float = 0.01,
        architecture: str = "skip",
        c_dim: int = 0,
    ) -> None:
        super().__init__()
        self.spatial_dims, self.z_dim, self.w_dim, self.c_dim = spatial_dims, z_dim, w_dim, c_dim
        self.synthesis = SynthesisNetwork(
            w_dim, spatial_dims, base_shape, num_blocks, channels, img_channels, variant, architecture
        )
        self.num_ws = self.synthesis.num_ws
        self.img_shape = self.synthesis.img_shape
        self.mapping = MappingNetwork(
            z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_multiplier, c_dim=c_dim
        )

    def forward(
        self,
        z: Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        update_emas: bool = False,
        c: Tensor | None = None,
    ) -> Tensor:
        """``c``: ``[N, c_dim]`` label vectors of a conditional generator (``c_dim`` > 0), else None."""
        ws = self.mapping(z, truncation_psi, truncation_cutoff, update_emas=update_emas, c=c)
        return self.synthesis(ws, noise_mode=noise_mode)


# --------------------------------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------------------------------


class DiscriminatorBlock(nn.Module):
    """Residual D block: [fromRGB] → conv → conv(↓2), plus a 1^n ↓2 skip; both paths scaled by √0.5."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        img_channels: int,
        spatial_dims: int,
        variant: str,
        group_count: int = 4,
    ) -> None:
        super().__init__()
        self.fromrgb = (
            Conv(img_channels, in_channels, 1, spatial_dims, activation="lrelu") if img_channels else None
        )
        kw: dict[str, Any] = dict(
            spatial_dims=spatial_dims, activation="lrelu", variant=variant, groups=group_count
        )
        self.conv0 = Conv(in_channels, in_channels, 3, **kw)
        self.conv1 = Conv(in_channels, out_channels, 3, down=2, **kw)
        self.skip = Conv(in_channels, out_channels, 1, spatial_dims, bias=False, down=2)

    def forward(self, x: Tensor) -> Tensor:
        if self.fromrgb is not None:
            x = self.fromrgb(x)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """Minibatch-std → conv → FC → output logit (StyleGAN2 D at the base resolution).

    Which conv the epilogue uses per variant (chosen so the parameter counts reproduce Liu et al., arXiv 2208.03934 Table 3,
    see docs/architecture.md): Group-D keeps a dense conv (33 channels do not split into 4 groups);
    Depthwise-D uses depthwise-separable; Split(&Shuffle)-D computes one std channel per branch so each
    branch of the grouped conv sees ``C/2 + 1`` channels.
    """

    def __init__(
        self,
        channels: int,
        base_shape: Sequence[int],
        spatial_dims: int,
        variant: str,
        mbstd_group_size: int = 4,
        out_dim: int = 1,
    ) -> None:
        super().__init__()
        split = variant in ("split", "split_shuffle")
        self.mbstd = MinibatchStd(mbstd_group_size, num_channels=2 if split else 1, interleave=split)
        conv_variant = "baseline" if variant == "group" else variant
        self.conv = Conv(
            channels + (2 if split else 1),
            channels,
            3,
            spatial_dims,
            activation="lrelu",
            variant=conv_variant,
        )
        self.fc = EqualizedLinear(channels * math.prod(base_shape), channels, activation="lrelu")
        self.out = EqualizedLinear(channels, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


class Discriminator(PretrainedMixin, nn.Module):
    """Residual StyleGAN2 discriminator with the variants of Liu et al., arXiv 2208.03934 Table 3.

    ``variant``: ``baseline | group | depthwise | split | split_shuffle``.

    ``c_dim`` > 0: a projection discriminator as in StyleGAN2-ADA (Karras et al., NeurIPS 2020, App. C; Miyato &
    Koyama, "cGANs with Projection Discriminator", ICLR 2018): the epilogue outputs ``cmap_dim`` features
    (default: the base block's width), a mapping network of ``mapping_layers`` maps the label alone to an
    embedding of that width, and the score is their dot product divided by √cmap_dim.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        base_shape: Sequence[int] = (2, 4, 4),
        num_blocks: int = 5,
        channels: int | Sequence[int] = 32,
        img_channels: int = 1,
        variant: str = "split_shuffle",
        mbstd_group_size: int = 4,
        group_count: int = 4,
        c_dim: int = 0,
        cmap_dim: int | None = None,
        mapping_layers: int = 8,
    ) -> None:
        super().__init__()
        if variant not in D_VARIANTS:
            raise ValueError(f"unknown discriminator variant {variant!r}; expected one of {D_VARIANTS}")
        self.spatial_dims = spatial_dims
        base = as_shape(base_shape, spatial_dims)
        widths = block_channels(channels, num_blocks)[::-1]  # from the output resolution down to the base
        self.img_shape = (img_channels, *block_shapes(base, num_blocks)[-1])
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(
                widths[i], widths[i + 1], img_channels if i == 0 else 0, spatial_dims, variant, group_count
            )
            for i in range(num_blocks - 1)
        )
        self.c_dim = c_dim
        self.cmap_dim = (cmap_dim or widths[-1]) if c_dim else 0
        if c_dim:
            self.mapping = MappingNetwork(0, self.cmap_dim, 1, mapping_layers, c_dim=c_dim)
        self.epilogue = DiscriminatorEpilogue(
            widths[-1], base, spatial_dims, variant, mbstd_group_size, self.cmap_dim or 1
        )

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits ``[N, 1]``; ``c``: ``[N, c_dim]`` label vectors of a conditional discriminator."""
        assert_shape(img, [None, *self.img_shape], "img")
        x = channels_last(img)  # every D conv and FIR pass is faster in channels-last layout on CPU
        for block in self.blocks:
            x = block(x)
        x = self.epilogue(x)
        if not self.c_dim:
            return x
        cmap = self.mapping(None, c=c)[:, 0]
        return project(x, cmap.to(x.dtype))


def project(features: Tensor, cmap: Tensor) -> Tensor:
    """The projection discriminator's score: ``Σ_k features_k · cmap_k / √K`` per sample, ``[N, 1]``."""
    return (features * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(cmap.shape[1]))
