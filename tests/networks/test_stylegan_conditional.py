"""The class-conditional StyleGAN2 networks: the mapping network's label embedding and the projection
discriminator (Karras et al., NeurIPS 2020, StyleGAN2-ADA's conditional form; Miyato & Koyama, "cGANs with
Projection Discriminator", ICLR 2018), against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medgan3d.networks import Discriminator, Generator
from medgan3d.networks.stylegan import project
from medgan3d.sampling import synthesize

runner = CliRunner()


def _tiny_pair(c_dim: int) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    kw = dict(spatial_dims=3, base_shape=(2, 2, 2), num_blocks=2, channels=8)
    return (
        Generator(**kw, z_dim=8, w_dim=8, mapping_layers=2, c_dim=c_dim),
        Discriminator(**kw, mbstd_group_size=2, c_dim=c_dim),
    )


def test_the_label_reaches_the_generator() -> None:
    G, _ = _tiny_pair(3)
    z = torch.randn(1, 8).repeat(3, 1)
    c = torch.eye(3)
    out = synthesize(G.eval(), z, c=c)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])
    again = synthesize(G, z[:1], c=c[1:2])
    torch.testing.assert_close(again[0], out[1], rtol=0, atol=1e-6)  # same z, same label: same volume


def test_the_mapping_concatenates_the_normalised_label_embedding_to_z() -> None:
    """An independent float64 computation of StyleGAN2-ADA's conditional mapping (embed, normalise, concat)."""
    G, _ = _tiny_pair(2)
    m = G.mapping
    z, c = torch.randn(4, 8), torch.eye(2)[[0, 1, 1, 0]]

    def norm(x: np.ndarray) -> np.ndarray:
        return x / np.sqrt((x**2).mean(axis=1, keepdims=True) + 1e-8)

    def linear(layer: torch.nn.Module, x: np.ndarray) -> np.ndarray:
        w = layer.weight.detach().double().numpy() * layer.weight_gain
        b = layer.bias.detach().double().numpy() * layer.bias_gain
        y = x @ w.T + b
        return np.where(y >= 0, y, 0.2 * y) * math.sqrt(2) if layer.activation == "lrelu" else y

    x = np.concatenate([norm(z.double().numpy()), norm(linear(m.embed, c.double().numpy()))], axis=1)
    for layer in m.layers:
        x = linear(layer, x)
    np.testing.assert_allclose(m(z, c=c)[:, 0].detach().numpy(), x, rtol=1e-4, atol=1e-5)


def test_projection_score_is_the_dot_product_over_root_k() -> None:
    f = torch.tensor([[1.0, 2.0, -1.0, 0.5], [3.0, 0.0, 1.0, 1.0]])
    cmap = torch.tensor([[1.0, 0.0, 2.0, 4.0], [0.5, 0.5, 0.5, -2.0]])
    expected = torch.tensor([[(1 + 0 - 2 + 2) / 2.0], [(1.5 + 0 + 0.5 - 2) / 2.0]])
    torch.testing.assert_close(project(f, cmap), expected)


def test_conditional_discriminator_projects_its_features_on_the_label_embedding() -> None:
    _, D = _tiny_pair(2)
    captured = {}
    D.epilogue.register_forward_hook(lambda mod, inp, out: captured.__setitem__("f", out.detach()))
    x, c = torch.randn(4, 1, 4, 4, 4), torch.eye(2)[[0, 1, 0, 1]]
    logits = D(x, c).detach()
    f = captured["f"]
    assert f.shape == (4, D.cmap_dim) and logits.shape == (4, 1)
    embeddings = D.mapping(None, c=torch.eye(2))[:, 0].detach()  # the two classes' embeddings
    by_hand = torch.tensor(
        [[float(f[i] @ embeddings[int(c[i, 1])]) / math.sqrt(D.cmap_dim)] for i in range(4)]
    )
    torch.testing.assert_close(logits, by_hand, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(D(x, c.flip(1)), logits)  # the other label gives another score


def test_conditional_networks_refuse_a_missing_label_and_unconditional_ones_are_unchanged() -> None:
    G, _ = _tiny_pair(2)
    with pytest.raises(ValueError, match="conditional"):
        G(torch.randn(2, 8))
    with pytest.raises(ValueError, match="label"):
        synthesize(G, torch.randn(2, 8))
    G0, D0 = _tiny_pair(0)
    assert (
        not hasattr(G0.mapping, "embed")
        and not hasattr(D0, "mapping")
        and D0.epilogue.out.weight.shape[0] == 1
    )
    with pytest.raises(ValueError, match="unconditional"):
        synthesize(G0, torch.randn(2, 8), c=torch.eye(2))
