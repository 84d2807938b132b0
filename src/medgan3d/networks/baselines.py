"""Networks of the four 3D GAN baselines that Liu et al. compare against (arXiv 2208.03934, §4.4, Tables 6–8).

3D-WGAN-GP (Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017), 3D-VAE-GAN (Wu et al.,
"Learning a Probabilistic Latent Space of Object Shapes via 3D Generative-Adversarial Modeling", NeurIPS
2016), 3D-α-GAN (Rosca et al., "Variational Approaches for Auto-Encoding Generative Adversarial Networks",
arXiv 1706.04987) and 3D-α-WGAN-GP (Kwon et al., "Generation of 3D Brain MRI Using Auto-Encoding Generative
Adversarial Networks", MICCAI 2019, §2 and Fig. 1), with the layer lists of Kwon et al.'s public code
(github.com/cyclomon/3dbraingen; docs/baselines.md):

* generator: z → stem (fully connected for WGAN-GP/VAE-GAN, a transposed conv for the α models) → 8c × seed,
  BN + ReLU, then four times nearest ×2 + conv 3³ (no bias): 8c → 4c → 2c → c (BN + ReLU) → 1 (tanh);
* critic / discriminator / α encoder: four k4 s2 p1 convs 1 → d → 2d → 4d → 8d (LeakyReLU 0.2; a norm from the
  second on) down to 8d × seed, then a conv whose kernel is the seed shape (one score, or L code entries);
* VAE encoder: the same trunk, flattened, and two heads (μ, log σ²) Linear → BN → ReLU → Linear;
* code discriminator (α models): Linear L → U → U → 1 with BN + LeakyReLU 0.2 between.

**Shape rule.** The seed is the volume shape divided by 2⁴ per axis (64³ → 4³, COCA 32×64×64 → 2×4×4),
and the last conv of every D/E has the seed as its kernel: at 64³ this is the reference's k4, at 32×64×64 it
is the (2,4,4) kernel that reproduces the paper's COCA counts (Liu et al., arXiv 2208.03934 Tables 6–7), and the 8d·4³ flatten of the VAE
heads becomes 8d·prod(seed). ``levels`` (4 in the reference) sets the number of ×2 / stride-2 stages and so
the top width c·2^(levels−1), d·2^(levels−1): the tiny presets use 3 at 16³ for a 2³ seed, since BatchNorm
over a 1³ map of two samples only sees their order. Discriminators return logits (the sigmoid of the
reference's BCE models is in the loss, as binary cross-entropy with logits); outputs are flattened to (B, n).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medgan3d.modeling import PretrainedMixin
from medgan3d.networks.shapes import assert_shape

LEVELS = 4  # ×2 stages of G and stride-2 stages of the D/E trunk in the reference (the default)
LRELU_SLOPE = 0.2
STEMS = ("linear", "transposed")
NORMS = ("batch", "layer", "instance", "none")
CODE_NORMS = ("batch", "layer", "none")
HEADS = ("global", "patch")
SAMPLE_NORMS = ("running", "batch")


def seed_shape(shape: Sequence[int], levels: int = LEVELS) -> tuple[int, int, int]:
    """G's first feature map and the D/E trunk's last one: ``shape`` / 2^levels per axis."""
    shape = tuple(int(s) for s in shape)
    if not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be a positive integer, got {levels!r}")
    step = 2**levels
    if len(shape) != 3 or any(s < step or s % step for s in shape):
        raise ValueError(f"volume shape {list(shape)} must be three positive multiples of {step} (D, H, W)")
    return shape[0] // step, shape[1] // step, shape[2] // step


def _check(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} not in {allowed}")
    return value


def _positive(**sizes: int) -> None:
    bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or v < 1}
    if bad:
        raise ValueError(f"sizes must be positive integers, got {bad}")


def norm3d(kind: str, channels: int) -> nn.Module:
    """BatchNorm3d (the reference), layer norm over (C, D, H, W) = GroupNorm(1, C), instance norm =
    GroupNorm(C, C) (both with a per-channel affine, the same 2C parameters as BN), or nothing."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    return nn.Identity()


def norm1d(kind: str, features: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    return nn.LayerNorm(features) if kind == "layer" else nn.Identity()


class UpBlock(nn.Module):
    """Nearest ×2, conv 3³ (no bias), BN, ReLU: one of G's three middle stages."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, 3, 1, 1, bias=False)
        self.norm = nn.BatchNorm3d(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))))


class DownBlock(nn.Module):
    """Conv k4 s2 p1 (with bias), optional norm, LeakyReLU 0.2: one stage of the D/E trunk."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv3d(c_in, c_out, 4, 2, 1)
        self.norm = norm3d(norm, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), LRELU_SLOPE)


def down_trunk(width: int, norm: str, levels: int) -> nn.ModuleList:
    """1 → d → 2d → … → d·2^(levels−1) (8d in the reference), halving every axis; the first stage has no norm
    (Kwon et al.'s code)."""
    widths = [1] + [width * 2**i for i in range(levels)]
    return nn.ModuleList(
        DownBlock(widths[i], widths[i + 1], norm if i > 0 else "none") for i in range(levels)
    )


def _run(blocks: nn.ModuleList, x: Tensor) -> Tensor:
    for block in blocks:
        x = block(x)
    return x


class BaselineGenerator(PretrainedMixin, nn.Module):
    """z (B, L) → volume (B, 1, *shape) in [−1, 1] (Kwon et al.'s generator).

    ``stem="linear"``: Linear L → 8c·prod(seed) with bias, reshaped (WGAN-GP, VAE-GAN); ``"transposed"``: a
    bias-free transposed conv on z as L × 1³ with the seed as kernel (α models). :meth:`generate` is the
    sampling path: ``sample_norm="running"`` normalises with BN's running statistics (eval mode, so a sample
    does not depend on the others in its batch); ``"batch"`` with the statistics of the batch being generated,
    as the reference's test notebook does (it never calls ``eval()``), leaving the running statistics as
    they were.
    """

    def __init__(
        self,
        shape: Sequence[int] = (64, 64, 64),
        latent_dim: int = 100,
        width: int = 16,
        stem: str = "linear",
        sample_norm: str = "running",
        levels: int = LEVELS,
    ) -> None:
        super().__init__()
        _positive(latent_dim=latent_dim, width=width)
        self.seed = seed_shape(shape, levels)
        self.shape = tuple(int(s) for s in shape)
        self.stem_kind = _check("stem", stem, STEMS)
        self.sample_norm = _check("sample_norm", sample_norm, SAMPLE_NORMS)
        self.latent_dim = self.z_dim = latent_dim
        self.spatial_dims = 3
        self.output_shape = (1, *self.shape)
        top = width << (levels - 1)
        if stem == "linear":
            self.stem: nn.Module = nn.Linear(latent_dim, top * math.prod(self.seed))
        else:
            self.stem = nn.ConvTranspose3d(latent_dim, top, self.seed, 1, 0, bias=False)
        self.stem_norm = nn.BatchNorm3d(top)
        self.blocks = nn.ModuleList(UpBlock(top >> i, top >> (i + 1)) for i in range(levels - 1))
        self.to_volume = nn.Conv3d(width, 1, 3, 1, 1, bias=False)

    def forward(self, z: Tensor) -> Tensor:
        assert_shape(z, [None, self.latent_dim], "z")
        n = z.shape[0]
        if self.stem_kind == "linear":
            h = self.stem(z).view(n, -1, *self.seed)
        else:
            h = self.stem(z.view(n, -1, 1, 1, 1))
        h = _run(self.blocks, F.relu(self.stem_norm(h)))
        return torch.tanh(self.to_volume(F.interpolate(h, scale_factor=2, mode="nearest")))

    def generate(self, z: Tensor) -> Tensor:
        """Samples for snapshots, ``generate`` and ``evaluate``, with the BN mode of ``sample_norm``; the
        module's train/eval mode and running statistics are left as they were."""
        if self.sample_norm == "batch":
            return copy.deepcopy(self).train()(z)
        was_training = self.training
        self.eval()
        try:
            return self(z)
        finally:
            self.train(was_training)


class BaselineDiscriminator(PretrainedMixin, nn.Module):
    """Volume (B, 1, *shape) → scores (B, n): the WGAN critics and the BCE discriminators.

    ``head="global"``: the last conv has the seed as kernel, stride 1, no padding → one score per volume;
    ``"patch"``: the same kernel with stride 2 and padding 1, as the reference's WGAN-GP critic (k4 s2 p1 at
    64³) → 2×2×2 = 8 patch scores (any seed gives 2 per axis). ``norm`` is the trunk's normalisation: BN in
    the reference; layer norm, instance norm or none as Gulrajani et al. (§4) advise for a gradient-penalty
    critic.
    """

    def __init__(
        self,
        shape: Sequence[int] = (64, 64, 64),
        width: int = 16,
        norm: str = "batch",
        head: str = "global",
        levels: int = LEVELS,
    ) -> None:
        super().__init__()
        _positive(width=width)
        self.seed = seed_shape(shape, levels)
        self.shape = tuple(int(s) for s in shape)
        self.norm_kind, self.head_kind = _check("norm", norm, NORMS), _check("head", head, HEADS)
        self.trunk = down_trunk(width, norm, levels)
        stride, pad = (1, 0) if head == "global" else (2, 1)
        self.head = nn.Conv3d(width << (levels - 1), 1, self.seed, stride, pad)

    def forward(self, x: Tensor) -> Tensor:
        assert_shape(x, [None, 1, *self.shape], "volume")
        return self.head(_run(self.trunk, x)).flatten(1)


class BaselineEncoder(PretrainedMixin, nn.Module):
    """Volume → code (B, L): the α models' deterministic encoder, the D trunk with an L-channel last conv
    (Rosca et al. §3; Kwon et al.'s ``Discriminator(out_class=L)``). BN, no output activation."""

    def __init__(
        self,
        shape: Sequence[int] = (64, 64, 64),
        latent_dim: int = 100,
        width: int = 16,
        levels: int = LEVELS,
    ) -> None:
        super().__init__()
        _positive(latent_dim=latent_dim, width=width)
        self.seed = seed_shape(shape, levels)
        self.latent_dim = latent_dim
        self.trunk = down_trunk(width, "batch", levels)
        self.head = nn.Conv3d(width << (levels - 1), latent_dim, self.seed, 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(_run(self.trunk, x)).flatten(1)


class GaussianHead(nn.Module):
    """Linear → BN1d → ReLU → Linear: one of the VAE encoder's two heads (μ or log σ²)."""

    def __init__(self, features: int, hidden: int, latent_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(features, hidden)
        self.norm = nn.BatchNorm1d(hidden)
        self.out = nn.Linear(hidden, latent_dim)

    def forward(self, h: Tensor) -> Tensor:
        return self.out(F.relu(self.norm(self.fc(h))))


class BaselineVAEEncoder(PretrainedMixin, nn.Module):
    """Volume → (μ, log σ², z) with z = μ + exp(½ log σ²)·ε, ε ~ N(0, I) (Kingma & Welling, "Auto-Encoding
    Variational Bayes", ICLR 2014, §2.4; Wu et al. §3.2). ``hidden`` is each head's width H."""

    def __init__(
        self,
        shape: Sequence[int] = (64, 64, 64),
        latent_dim: int = 100,
        width: int = 16,
        hidden: int = 512,
        levels: int = LEVELS,
    ) -> None:
        super().__init__()
        _positive(latent_dim=latent_dim, width=width, hidden=hidden)
        self.seed = seed_shape(shape, levels)
        self.latent_dim = latent_dim
        self.trunk = down_trunk(width, "batch", levels)
        features = (width << (levels - 1)) * math.prod(self.seed)
        self.mean = GaussianHead(features, hidden, latent_dim)
        self.logvar = GaussianHead(features, hidden, latent_dim)

    def forward(self, x: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``eps`` (B, L): the reparameterisation noise (drawn from torch's RNG when None)."""
        h = _run(self.trunk, x).flatten(1)
        mu, logvar = self.mean(h), self.logvar(h)
        eps = torch.randn_like(mu) if eps is None else eps
        return mu, logvar, mu + torch.exp(0.5 * logvar) * eps


class BaselineCodeDiscriminator(PretrainedMixin, nn.Module):
    """Code (B, L) → score (B, 1): Rosca et al.'s code discriminator (§3, Eq. 8) as in Kwon et al.'s code,
    Linear L → U → U → 1 with norm + LeakyReLU 0.2 between; ``norm``: BN (the reference), layer
    norm or none."""

    def __init__(self, latent_dim: int = 100, hidden: int = 512, norm: str = "batch") -> None:
        super().__init__()
        _positive(latent_dim=latent_dim, hidden=hidden)
        self.latent_dim = latent_dim
        self.norm_kind = _check("norm", norm, CODE_NORMS)
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(c_in, hidden), norm1d(norm, hidden)) for c_in in (latent_dim, hidden)
        )
        self.out = nn.Linear(hidden, 1)

    def forward(self, z: Tensor) -> Tensor:
        for layer in self.hidden:
            z = F.leaky_relu(layer(z), LRELU_SLOPE)
        return self.out(z)
