"""HA-GAN networks: published parameter counts, shapes, exact chunked inference, spectral norm, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medgan3d.modeling import from_pretrained
from medgan3d.networks.hagan import (
    HAGANDiscriminator,
    HAGANEncoder,
    HAGANGenerator,
    HAGANLatentEncoder,
    UpConv3d,
    encode_volume,
    training_latent_features,
)

TINY_W, TINY_L = 32, 16


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_meta(R: int, w: int = 64, latent: int = 1024) -> tuple[nn.Module, ...]:
    with torch.device("meta"):
        return (
            HAGANGenerator(R, latent, w),
            HAGANDiscriminator(R, w),
            HAGANEncoder(w),
            HAGANLatentEncoder(R, latent, w),
        )


def perturb_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random GroupNorm affines, so that the normalisation statistics really matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.GroupNorm):
                m.weight.copy_(1 + 0.5 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.5 * torch.randn(m.bias.shape, generator=gen))
    return model


# Published numbers (spec §4, parameter totals table)
PUBLISHED = {
    128: dict(
        GA=52_392_256,
        GL=69_697,
        GH=56_257,
        DH=4_599_073,
        DL=2_642_369,
        E=161_152,
        S=19_663_168,
        total=79_583_972,
    ),
    256: dict(
        GA=52_392_256,
        GL=69_697,
        GH=56_257,
        DH=4_630_833,
        DL=2_771_425,
        E=161_152,
        S=19_663_264,
        total=79_744_884,
    ),
}


@pytest.mark.parametrize("R", [128, 256])
def test_published_parameter_counts(R: int) -> None:
    G, D, E, S = build_meta(R)
    ref = PUBLISHED[R]
    assert G.param_groups() == {"G^A": ref["GA"], "G^L": ref["GL"], "G^H": ref["GH"]}
    assert count(G) == 52_518_210
    assert D.param_groups() == {"D^H": ref["DH"], "D^L": ref["DL"]}
    assert count(D) == ref["DH"] + ref["DL"]
    assert count(E) == ref["E"]
    assert count(S) == ref["S"]
    assert count(G) + count(D) + count(E) + count(S) == ref["total"]


@pytest.mark.parametrize(("R", "millions"), [(32, 74.7), (64, 78.7)])
def test_paper_totals_at_small_resolutions(R: int, millions: float) -> None:
    # the paper's table gives only rounded totals at 32³ and 64³; the resolution rule reproduces them
    total = sum(count(m) for m in build_meta(R))
    assert round(total / 1e6, 1) == millions


def test_invalid_configurations() -> None:
    with pytest.raises(ValueError, match="power of two"):
        HAGANGenerator(48, 16, 32)
    with pytest.raises(ValueError, match="power of two"):
        HAGANDiscriminator(16, 8)
    with pytest.raises(ValueError, match="divisible by 8"):
        HAGANGenerator(32, 16, 48)  # G^L's w/4 = 12
    with pytest.raises(ValueError, match="divisible by 8"):
        HAGANEncoder(8)
    with pytest.raises(ValueError, match="divisible by 8"):
        HAGANLatentEncoder(256, 16, 8)


@pytest.mark.parametrize("R", [32, 64])
def test_output_shapes(R: int) -> None:
    torch.manual_seed(0)
    B, w = 2, TINY_W
    G, D = HAGANGenerator(R, TINY_L, w), HAGANDiscriminator(R, 8)
    E, S = HAGANEncoder(w), HAGANLatentEncoder(R, TINY_L, w)
    q, e, t = R // 4, R // 8, R // 32
    assert (G.sub_depth, G.latent_sub_depth, G.max_start) == (e, t, q - t)
    assert G.img_shape == (1, R, R, R) and G.latent_shape == (w, q, q, q) and G.z_dim == TINY_L
    z = torch.randn(B, TINY_L)
    with torch.no_grad():
        h = G.common(z)
        assert h.shape == (B, w, q, q, q) and (h >= 0).all()  # ends in ReLU
        assert G.low(h).shape == (B, 1, q, q, q)
        assert G.high(h[:, :, :3]).shape == (B, 1, 12, R, R)
        sub, low = G(z, G.max_start)
        assert sub.shape == (B, 1, e, R, R) and low.shape == (B, 1, q, q, q)
        assert G.generate(z).shape == (B, 1, R, R, R)
        assert D(sub, low, torch.rand(B)).shape == (B, 1)
        f_sub = E(sub)
        assert f_sub.shape == (B, w, t, q, q) and (f_sub >= 0).all()
        assert S(h).shape == (B, TINY_L)


@pytest.mark.parametrize("R", [32, 64])
@pytest.mark.parametrize("train", [False, True])
def test_chunked_generate_equals_whole(R: int, train: bool) -> None:
    torch.manual_seed(1)
    G = perturb_norms(HAGANGenerator(R, TINY_L, TINY_W), seed=R).train(train)
    depth = R // 4
    with torch.no_grad():
        z = torch.randn(2, TINY_L)
        whole = G.generate(z)
        h = G.common(z)
        for chunk in sorted({1, 2, 3, depth // 2, depth - 1}):
            chunked = G.generate(z, chunk_depth=chunk)
            assert chunked.shape == whole.shape
            assert (chunked - whole).abs().max().item() < 1e-4, chunk
            assert torch.equal(G.decode_latent(h, chunk), chunked)
        assert torch.equal(G.generate(z, 0), whole) and torch.equal(G.decode_latent(h), whole)
        # slab-wise G^H (per-slab GroupNorm statistics, no halo) differs: the global statistics matter
        naive = torch.cat([G.high(h[:, :, a : a + 2]) for a in range(0, depth, 2)], dim=2)
        assert (naive - whole).abs().max().item() > 1e-3


def test_forward_training_path() -> None:
    torch.manual_seed(2)
    R = 64
    G = perturb_norms(HAGANGenerator(R, TINY_L, TINY_W))
    z = torch.randn(2, TINY_L)
    with torch.no_grad():
        h = G.common(z)
        for start in (0, 5, G.max_start):
            sub, low = G(z, start)
            assert sub.shape == (2, 1, R // 8, R, R)
            torch.testing.assert_close(sub, G.high(h[:, :, start : start + R // 32]), rtol=0, atol=1e-6)
            torch.testing.assert_close(low, G.low(h), rtol=0, atol=1e-6)
    for bad in (-1, G.max_start + 1):
        with pytest.raises(ValueError, match="latent_start"):
            G(z, bad)


def test_fused_upconv_equals_interpolate_then_conv() -> None:
    torch.manual_seed(3)
    conv = UpConv3d(5, 3)
    x = torch.randn(2, 5, 3, 6, 4, requires_grad=True)
    fused = conv(x)
    grads_fused = torch.autograd.grad(fused.square().sum(), [x, conv.weight, conv.bias])
    reference = F.conv3d(F.interpolate(x, scale_factor=2, mode="nearest"), conv.weight, conv.bias, padding=1)
    grads_ref = torch.autograd.grad(reference.square().sum(), [x, conv.weight, conv.bias])
    assert fused.shape == (2, 3, 6, 12, 8)
    torch.testing.assert_close(fused, reference, rtol=0, atol=1e-5)
    for a, b in zip(grads_fused, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    conv.fused = False
    torch.testing.assert_close(conv(x), reference, rtol=0, atol=0)


def test_batch_one_discriminator_and_latent_encoder() -> None:
    torch.manual_seed(4)
    R = 32
    D, S = HAGANDiscriminator(R, 8), HAGANLatentEncoder(R, TINY_L, TINY_W)
    sub, low = torch.randn(1, 1, R // 8, R, R), torch.randn(1, 1, R // 4, R // 4, R // 4)
    out = D(sub, low, torch.tensor([0.5]))
    assert out.shape == (1, 1)
    assert torch.equal(D.eval()(sub, low, 0.5), D(sub, low, torch.tensor([0.5])))  # a plain float works too
    assert S(torch.randn(1, TINY_W, R // 4, R // 4, R // 4)).shape == (1, TINY_L)
    # the logit is the mean of the two discriminators' logits
    with torch.no_grad():
        manual = (D.high(sub, torch.tensor([0.5])) + D.low(low)) / 2
    torch.testing.assert_close(D(sub, low, torch.tensor([0.5])), manual)


def test_discriminator_is_spectrally_normalised() -> None:
    torch.manual_seed(5)
    R = 32
    D = HAGANDiscriminator(R, 8).train()
    assert not any(isinstance(m, nn.GroupNorm | nn.BatchNorm3d | nn.InstanceNorm3d) for m in D.modules())
    layers = [m for m in D.modules() if isinstance(m, nn.Conv3d | nn.Linear)]
    assert layers and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in layers)
    sub, low = torch.randn(2, 1, R // 8, R, R), torch.randn(2, 1, R // 4, R // 4, R // 4)
    with torch.no_grad():
        for m in layers:  # default inits have spectral norms on both sides of 1; make them clearly not 1
            m.parametrizations.weight.original.mul_(4.0)
        for _ in range(50):
            D(sub, low, torch.rand(2))
    D.eval()
    for m in layers:
        sigma = torch.linalg.matrix_norm(m.weight.reshape(m.weight.shape[0], -1), 2)
        assert abs(sigma.item() - 1) < 2e-2, m
        original = m.parametrizations.weight.original
        assert torch.linalg.matrix_norm(original.reshape(original.shape[0], -1), 2) > 2


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(6)
    R = 32
    G = perturb_norms(HAGANGenerator(R, TINY_L, TINY_W))
    D, E, S = HAGANDiscriminator(R, 8), HAGANEncoder(TINY_W), HAGANLatentEncoder(R, TINY_L, TINY_W)
    z, pos = torch.randn(2, TINY_L), torch.rand(2)
    sub, low = torch.randn(2, 1, R // 8, R, R), torch.randn(2, 1, R // 4, R // 4, R // 4)
    h = torch.rand(2, TINY_W, R // 4, R // 4, R // 4)
    with torch.no_grad():
        D(sub, low, pos)  # train-mode forward: moves the power-iteration vectors away from their init
    runs = {
        "G": (G, lambda m: (m.generate(z), *m(z, 3))),
        "D": (D, lambda m: (m(sub, low, pos),)),
        "E": (E, lambda m: (m(sub),)),
        "S": (S, lambda m: (m(h),)),
    }
    for name, (model, run) in runs.items():
        loaded = from_pretrained(model.save_pretrained(tmp_path / name))
        assert type(loaded) is type(model) and loaded.config == model.config
        for a, b in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
            assert a[0] == b[0] and torch.equal(a[1], b[1])
        with torch.no_grad():
            for mode in (False, True):  # eval, then train (D's u/v update identically)
                model.train(mode), loaded.train(mode)
                for x, y in zip(run(model), run(loaded), strict=True):
                    assert torch.equal(x, y), (name, mode)
    assert any(k.endswith("parametrizations.weight.original") for k in D.state_dict())
    assert any(k.endswith("parametrizations.weight.0._u") for k in D.state_dict())


def test_encode_volume_and_training_features() -> None:
    torch.manual_seed(7)
    R, B = 32, 2
    E, S = perturb_norms(HAGANEncoder(TINY_W)), HAGANLatentEncoder(R, TINY_L, TINY_W)
    x = torch.randn(B, 1, R, R, R)
    with torch.no_grad():
        h_hat, z_hat = encode_volume(E, S, x)
        assert h_hat.shape == (B, TINY_W, R // 4, R // 4, R // 4) and z_hat.shape == (B, TINY_L)
        torch.testing.assert_close(z_hat, S(E(x)))
        feats = training_latent_features(E, x, R // 8)
        assert feats.shape == h_hat.shape
        manual = torch.cat([E(x[:, :, i : i + R // 8]) for i in range(0, R, R // 8)], dim=2)
        torch.testing.assert_close(feats, manual, rtol=0, atol=1e-5)
        assert (feats - h_hat).abs().max() > 1e-3  # per-chunk statistics differ from the full-volume pass
    with pytest.raises(ValueError, match="multiple"):
        training_latent_features(E, x, 5)
