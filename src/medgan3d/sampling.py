"""The one sampler: seeds → latents → volumes for every generator family.

``generate``, ``evaluate``, the viewer and the training snapshots all draw through :func:`sample_batches`, so the
volumes a user inspects (``generate --seeds 0-63``) are the volumes that are scored (``evaluate -n 64 --seed 0``):
the same z per seed, the same noise, the same ψ, the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TypeGuard

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from medgan3d.networks.baselines import BaselineGenerator
    from medgan3d.networks.hagan import HAGANGenerator

# HA-GAN's high-resolution head runs over slabs of this many latent slices (4 output slices each): exact and
# bounded in memory (Sun et al. run the whole 256³ volume at once: 5.7 GiB on CPU).
DEFAULT_CHUNK_DEPTH = 8


def is_hagan(G: nn.Module) -> TypeGuard[HAGANGenerator]:
    return type(G).__name__ == "HAGANGenerator"  # by name: StyleGAN-only code never imports the HA-GAN module


def is_baseline(G: nn.Module) -> TypeGuard[BaselineGenerator]:
    return type(G).__name__ == "BaselineGenerator"  # the four 3D GAN baselines (networks.baselines)


def synthesize(
    G: nn.Module,
    z: Tensor,
    psi: float = 1.0,
    noise_mode: str = "const",
    chunk_depth: int | None = DEFAULT_CHUNK_DEPTH,
    c: Tensor | None = None,
) -> Tensor:
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


NOISE_MODES = ("const", "random", "none")
# Volumes per forward pass. One: a volume then depends on its seed (and label) only, never on the other volumes
# of its batch (batched convolutions round differently, and BatchNorm in batch mode mixes samples); larger
# batches are faster and agree with it to float rounding.
BATCH_SIZE = 1


def seed_latents(z_dim: int, seeds: Sequence[int]) -> Tensor:
    """``[len(seeds), z_dim]``: row ``i`` is the N(0, I) draw of ``torch.Generator().manual_seed(seeds[i])``.

    A volume depends on its own seed only, not on how many others are drawn or in which order.
    """
    rows = [torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows) if rows else torch.empty(0, z_dim)


def latent_dim(G: nn.Module) -> int:
    """The length of a generator's z (every family's generator has an int ``z_dim``)."""
    z_dim = G.z_dim
    if not isinstance(z_dim, int):
        raise TypeError(f"{type(G).__name__} has no integer z_dim: not a medgan3d generator")
    return z_dim


def sample_batches(
    G: nn.Module,
    seeds: Sequence[int],
    psi: float = 1.0,
    noise_mode: str = "const",
    batch_size: int = BATCH_SIZE,
    chunk_depth: int | None = DEFAULT_CHUNK_DEPTH,
    c: Tensor | None = None,
) -> Iterator[tuple[list[int], Tensor]]:
    """``(seeds of the batch, volumes [b, C, *spatial] float32 on the CPU)`` for ``seeds`` in the order given.

    z per seed (:func:`seed_latents`); ψ and ``chunk_depth`` as :func:`synthesize`. ``noise_mode`` (StyleGAN2's
    per-layer noise inputs; the other families have none): ``"const"`` the generator's fixed noise buffers,
    ``"none"`` no noise, ``"random"`` fresh noise from torch's RNG seeded with the batch's first seed (so it
    depends on the batching). ``c`` ``[len(seeds), c_dim]``: the label vectors of a conditional generator
    (seed ``seeds[i]`` gets row i). Seeds go in batches of ``batch_size`` (default one at a time), ``G`` in eval
    mode, without autograd;
    ``G``'s mode and the caller's RNG state are left as they were.
    """
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if c is not None and len(c) != len(seeds):
        raise ValueError(f"{len(c)} label vectors for {len(seeds)} seeds")
    device = next(G.parameters()).device
    z_dim = latent_dim(G)
    was_training = G.training
    G.eval()
    try:
        for start in range(0, len(seeds), batch_size):
            chunk = [int(s) for s in seeds[start : start + batch_size]]
            z = seed_latents(z_dim, chunk).to(device)
            with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(chunk[0])
                rows = None if c is None else c[start : start + batch_size].to(device)
                img = synthesize(G, z, psi, noise_mode=noise_mode, chunk_depth=chunk_depth, c=rows)
            yield chunk, img.float().cpu()
    finally:
        G.train(was_training)


def sample(
    G: nn.Module,
    seeds: Sequence[int],
    psi: float = 1.0,
    noise_mode: str = "const",
    batch_size: int = BATCH_SIZE,
    chunk_depth: int | None = DEFAULT_CHUNK_DEPTH,
    c: Tensor | None = None,
) -> Tensor:
    """:func:`sample_batches` concatenated: ``[len(seeds), C, *spatial]`` float32 on the CPU."""
    batches = [img for _, img in sample_batches(G, seeds, psi, noise_mode, batch_size, chunk_depth, c)]
    return torch.cat(batches)
