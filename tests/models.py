"""The small seeded networks that tests in several folders share, defined once."""

from __future__ import annotations

import torch

from medgan3d.config import ModelConfig
from medgan3d.latents import noise_layers


def small_generator(architecture: str = "skip", noise_strength: float = 0.1) -> torch.nn.Module:
    """An 8³ generator with visible noise, seeded."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        spatial_dims=3,
        base_shape=(2, 2, 2),
        num_blocks=3,
        channels=8,
        z_dim=16,
        w_dim=16,
        mapping_layers=2,
        g_variant="baseline",
        d_variant="baseline",
        g_architecture=architecture,
    )
    G = cfg.build_generator().eval().requires_grad_(False)
    for layer in noise_layers(G):
        layer.noise_strength.fill_(noise_strength)
    return G
