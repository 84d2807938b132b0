"""The four 3D GAN baselines' networks (Kwon et al., MICCAI 2019, as Liu et al., arXiv 2208.03934 Tables 6–8
use them): parameter counts, output shapes, sampling and saving.

Facts from ``shared/specs/baselines.md``: the six parameter counts of Liu et al. (Tables 6–7) and the per-network
counts of §3.3–3.4, the closed forms of §3.1 and the layer table of §1, all computed here independently of the
network code (conv arithmetic, hand-written formulas). The families that train them: tests/training/families.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from medgan3d.cli.main import app
from medgan3d.config import load_preset, model_config_from_dict
from medgan3d.networks import baselines as nb

FAMILIES = ("wgan-gp", "vae-gan", "alpha-gan", "alpha-wgan-gp")

# spec §3.3 (ADNI 64³) and §3.4 (COCA 32×64×64): per network, and the paper's totals (Tables 6 and 7)
ALPHA_ADNI = {"G": 1_110_416, "D": 698_033, "E": 1_509_140, "CD": 316_929}
ALPHA_COCA = {"G": 700_816, "D": 693_937, "E": 1_099_540, "CD": 316_929}
COUNTS = {
    "wgan-gp-adni": ({"G": 1_118_608, "D": 698_033}, 1_816_641),
    "vae-gan-adni": ({"G": 1_118_608, "D": 698_033, "E": 9_184_120}, 11_000_761),
    "alpha-gan-adni": (ALPHA_ADNI, 3_634_518),
    "alpha-wgan-gp-adni": (ALPHA_ADNI, 3_634_518),
    "wgan-gp-coca": ({"G": 704_912, "D": 693_937}, 1_398_849),
    "vae-gan-coca": ({"G": 704_912, "D": 693_937, "E": 4_989_816}, 6_388_665),
    "alpha-gan-coca": (ALPHA_COCA, 2_811_222),
    "alpha-wgan-gp-coca": (ALPHA_COCA, 2_811_222),
}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------ parameter counts


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_info_reproduces_the_paper_counts(name: str) -> None:
    result = CliRunner().invoke(app, ["info", "--config", name, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    per_network, total = COUNTS[name]
    assert data["params"] == per_network | {"total": total}
    assert round(total / 1e6, 3) == load_preset(name).paper_params_m
    assert data["output_shape"] == ([1, 64, 64, 64] if name.endswith("adni") else [1, 32, 64, 64])
    assert sum(data["params_per_module"].values()) == total


@pytest.mark.parametrize("shape", [(64, 64, 64), (32, 64, 64)])
@pytest.mark.parametrize(
    "c, d, L, H, U", [(16, 16, 100, 512, 512), (3, 5, 7, 11, 13), (64, 64, 1000, 2048, 4096)]
)
def test_closed_forms_of_the_spec(
    shape: tuple[int, int, int], c: int, d: int, L: int, H: int, U: int
) -> None:
    """Spec §3.1 with P = prod(seed) = 64 (ADNI) or 32 (COCA); the last row is the reference notebooks' size."""
    P = 64 if shape == (64, 64, 64) else 32
    with torch.device("meta"):
        g_fc = nb.BaselineGenerator(shape, L, c, "linear")
        g_tc = nb.BaselineGenerator(shape, L, c, "transposed")
        disc = nb.BaselineDiscriminator(shape, d)
        patch = nb.BaselineDiscriminator(shape, d, head="patch")
        enc = nb.BaselineEncoder(shape, L, d)
        vae = nb.BaselineVAEEncoder(shape, L, d, H)
        cd = nb.BaselineCodeDiscriminator(L, U)
    rest = 1134 * c * c + 57 * c
    assert count(g_fc) == 8 * c * P * (L + 1) + rest
    assert count(g_tc) == 8 * c * P * L + rest
    trunk = 2688 * d * d + 107 * d
    assert count(disc) == count(patch) == trunk + 8 * d * P + 1
    assert count(enc) == trunk + 8 * d * P * L + L
    assert count(vae) == trunk + 2 * (8 * d * P * H + 3 * H + H * L + L)
    assert count(cd) == L * U + U * U + 7 * U + 1
    if (c, L, shape) == (64, 1000, (64, 64, 64)):  # spec §3.2: the reference notebooks' sizes
        assert count(g_fc) + count(disc) == 48_498_945
        assert count(g_fc) + count(disc) + count(vae) == 197_843_857
        assert count(g_tc) + count(disc) + count(enc) + count(cd) == 113_153_962


# ---------------------------------------------------------------------------------------- output shapes


def conv_out(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


@pytest.mark.parametrize("shape", [(64, 64, 64), (32, 64, 64)])
def test_output_shapes_follow_the_layer_table(shape: tuple[int, int, int]) -> None:
    """Spec §1: four k4 s2 p1 stages down to 8d × seed, G up ×2 four times from 8c × seed; the last conv's
    kernel is the seed (s1 p0 → 1, the WGAN critic's s2 p1 → 2 per axis)."""
    B, L, c, d, H, U = 2, 100, 16, 16, 512, 512
    seed = list(shape)
    for _ in range(4):
        seed = [conv_out(n, 4, 2, 1) for n in seed]
    assert seed == ([4, 4, 4] if shape[0] == 64 else [2, 4, 4])
    patches = [conv_out(n, n, 2, 1) for n in seed]
    seen: dict[str, tuple[int, ...]] = {}
    with torch.device("meta"):
        G_fc, G_tc = (
            nb.BaselineGenerator(shape, L, c, "linear"),
            nb.BaselineGenerator(shape, L, c, "transposed"),
        )
        D, critic = nb.BaselineDiscriminator(shape, d), nb.BaselineDiscriminator(shape, d, head="patch")
        E, V, CD = (
            nb.BaselineEncoder(shape, L, d),
            nb.BaselineVAEEncoder(shape, L, d, H),
            nb.BaselineCodeDiscriminator(L, U),
        )
        G_tc.stem_norm.register_forward_hook(lambda m, i, o: seen.__setitem__("stem", tuple(o.shape)))
        D.trunk[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("trunk", tuple(o.shape)))
        z, x = torch.empty(B, L), torch.empty(B, 1, *shape)
        assert tuple(G_fc(z).shape) == tuple(G_tc(z).shape) == (B, 1, *shape)
        assert tuple(D(x).shape) == (B, 1)
        assert tuple(critic(x).shape) == (B, int(np.prod(patches))) == (B, 8)
        assert tuple(E(x).shape) == (B, L)
        assert [tuple(t.shape) for t in V(x)] == [(B, L)] * 3
        assert tuple(CD(z).shape) == (B, 1)
    assert seen == {"stem": (B, 8 * c, *seed), "trunk": (B, 8 * d, *seed)}


def test_shape_rule_refuses_what_it_cannot_build() -> None:
    with pytest.raises(ValueError, match="multiples of 16"):
        nb.BaselineGenerator((24, 64, 64))
    with pytest.raises(ValueError, match="multiples of 8"):
        model_config_from_dict({"family": "wgan-gp", "shape": [12, 16, 16], "levels": 3})
    assert nb.seed_shape((16, 16, 16), levels=3) == (2, 2, 2)
    with pytest.raises(ValueError, match="d_norm"):
        model_config_from_dict({"family": "alpha-gan", "d_norm": "spectral"})


# ---------------------------------------------------------------------------------- sampling and saving


def test_sampling_leaves_training_state_alone_and_psi_scales_z() -> None:
    from medgan3d.sampling import synthesize

    torch.manual_seed(0)
    G = load_preset("alpha-gan-tiny").model.build_generator().train()
    G(torch.randn(8, 16))  # some running statistics
    buffers = [b.clone() for b in G.buffers()]
    z = torch.randn(3, 16)
    with torch.no_grad():
        out = synthesize(G, z, psi=0.5)
        G.eval()
        expected = G(0.5 * z)
    G.train()
    torch.testing.assert_close(out, expected)  # running statistics, ψ scales z
    assert G.training and all(torch.equal(a, b) for a, b in zip(buffers, G.buffers(), strict=True))
    G.sample_norm = "batch"  # the reference's test notebook: statistics of the generated batch
    with torch.no_grad():
        pair = G.generate(z[:2])
        assert not torch.allclose(pair[0], G.generate(z[[0, 2]])[0])  # depends on its batch mates
    assert all(torch.equal(a, b) for a, b in zip(buffers, G.buffers(), strict=True))


@pytest.mark.parametrize("family", FAMILIES)
def test_networks_round_trip_through_save_pretrained(tmp_path: Path, family: str) -> None:
    from medgan3d.modeling import from_pretrained

    model = load_preset(f"{family}-tiny").model
    assert model_config_from_dict(model.to_dict()) == model
    for name, net in model.build_networks().items():
        again = from_pretrained(net.save_pretrained(tmp_path / name))
        assert type(again) is type(net)
        for k, v in net.state_dict().items():
            assert torch.equal(v, again.state_dict()[k]), (name, k)
