"""One call that turns latents into volumes for every generator family (snapshots, generate, evaluate)."""

from __future__ import annotations

from torch import Tensor, nn

# HA-GAN's high-resolution head runs over slabs of this many latent slices (4 output slices each): exact and
# bounded in memory (Sun et al. run the whole 256³ volume at once: 5.7 GiB on CPU).
DEFAULT_CHUNK_DEPTH = 8


def is_hagan(G: nn.Module) -> bool:
    return type(G).__name__ == "HAGANGenerator"  # by name: StyleGAN-only code never imports the HA-GAN module


def is_baseline(G: nn.Module) -> bool:
    return type(G).__name__ == "BaselineGenerator"  # the four 3D GAN baselines (networks.baselines)


def synthesize(G: nn.Module, z: Tensor, psi: float = 1.0, noise_mode: str = "const",
               chunk_depth: int | None = DEFAULT_CHUNK_DEPTH, c: Tensor | None = None) -> Tensor:  # fmt: skip
    """Volumes ``[n, C, *spatial]`` from latents ``z``.

    StyleGAN2: truncation ψ towards ``w_avg`` and the given noise mode. HA-GAN (no mapping network, no noise
    inputs): ψ scales z towards the mode of its N(0, I) prior, and the full-resolution volume is decoded in
    slabs of ``chunk_depth`` latent slices (0 or None: the whole volume at once; both give the same values).
    Baselines (WGAN-GP, VAE-GAN, α-GAN, α-WGAN-GP: z → volume, no noise inputs): ψ scales z the same way, and
    the generator's BatchNorm uses the statistics of its ``sample_norm`` setting (running ones by default).
    ``c``: ``[n, c_dim]`` label vectors of a conditional generator (``G.c_dim`` > 0; see
    :meth:`medgan3d.data.labels.LabelSpec.encode`), None for an unconditional one.
    """
    c_dim = getattr(G, "c_dim", 0)
    if c_dim and c is None:
        raise ValueError(
            f"this generator is conditional ({c_dim}-wide labels): give a label (generate --label K)"
        )
    if not c_dim and c is not None:
        raise ValueError("this generator is unconditional: it takes no label")
    if c is not None:
        c = c.to(z.device)
    if is_baseline(G):
        return G.generate(z * psi if psi != 1.0 else z)
    if is_hagan(G):
        kw = {"c": c} if c is not None else {}
        return G.generate(z * psi if psi != 1.0 else z, chunk_depth=chunk_depth or None, **kw)
    if c is None:
        return G(z, truncation_psi=psi, noise_mode=noise_mode)
    return G(z, truncation_psi=psi, noise_mode=noise_mode, c=c)
