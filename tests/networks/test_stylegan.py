"""Generator and discriminator, every variant, in 2D and 3D with tiny shapes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from medgan3d.config import ModelConfig
from medgan3d.modeling import from_pretrained
from medgan3d.networks import Discriminator, Generator
from medgan3d.networks.layers import D_VARIANTS, G_VARIANTS


def tiny(nd: int, g: str = "split_shuffle", d: str = "split_shuffle") -> ModelConfig:
    base = (2, 4, 4) if nd == 3 else (4, 4)
    return ModelConfig(
        spatial_dims=nd,
        base_shape=base,
        num_blocks=3,
        channels=8,
        z_dim=16,
        w_dim=16,
        mapping_layers=2,
        g_variant=g,
        d_variant=d,
        mbstd_group_size=2,
    )


DIMS = [2, 3]


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("g", G_VARIANTS)
def test_generator_output_shape(nd: int, g: str) -> None:
    cfg = tiny(nd, g=g)
    G = cfg.build_generator()
    img = G(torch.randn(2, cfg.z_dim))
    expected = (2, 1, 8, 16, 16) if nd == 3 else (2, 1, 16, 16)
    assert img.shape == expected == (2, *cfg.output_shape)
    assert G.num_ws == 2 * cfg.num_blocks
    assert torch.isfinite(img).all()


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("d", D_VARIANTS)
def test_discriminator_output_shape(nd: int, d: str) -> None:
    cfg = tiny(nd, d=d)
    D = cfg.build_discriminator()
    logits = D(torch.randn(4, *cfg.output_shape))
    assert logits.shape == (4, 1)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("nd", DIMS)
def test_determinism_under_seed(nd: int) -> None:
    cfg = tiny(nd)

    def sample() -> torch.Tensor:
        torch.manual_seed(123)
        G = cfg.build_generator()
        with torch.no_grad():
            G.synthesis.blocks[1].conv1.noise_strength.fill_(0.3)  # make random noise matter
            return G(torch.randn(2, cfg.z_dim), noise_mode="random")

    a, b = sample(), sample()
    assert torch.equal(a, b)
    torch.manual_seed(124)
    other = cfg.build_generator()(torch.randn(2, cfg.z_dim))
    assert not torch.allclose(a, other)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize(
    ("g", "d"),
    [
        ("baseline", "baseline"),
        ("split", "split"),
        ("split_shuffle", "split_shuffle"),
        ("baseline", "group"),
        ("baseline", "depthwise"),
    ],
)
def test_every_parameter_receives_gradient(nd: int, g: str, d: str) -> None:
    torch.manual_seed(0)
    cfg = tiny(nd, g=g, d=d)
    G, D = cfg.build_generator(), cfg.build_discriminator()
    D(G(torch.randn(2, cfg.z_dim))).sum().backward()
    for name, p in [
        *(("G." + n, p) for n, p in G.named_parameters()),
        *(("D." + n, p) for n, p in D.named_parameters()),
    ]:
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize("nd", DIMS)
def test_psi_zero_gives_w_avg_image(nd: int) -> None:
    torch.manual_seed(0)
    cfg = tiny(nd)
    G = cfg.build_generator().eval()
    with torch.no_grad():
        for _ in range(5):
            G.mapping(torch.randn(8, cfg.z_dim), update_emas=True)
        assert G.mapping.w_avg.abs().sum() > 0
        imgs = G(torch.randn(3, cfg.z_dim), truncation_psi=0.0, noise_mode="const")
        ws = G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
        expected = G.synthesis(ws, noise_mode="const")
        free = G(torch.randn(3, cfg.z_dim), noise_mode="const")
    for img in imgs:
        torch.testing.assert_close(img, expected[0], atol=1e-5, rtol=1e-5)
    assert (free[0] - free[1]).abs().max() > 1e-3  # without truncation the samples differ


@pytest.mark.parametrize("nd", DIMS)
def test_truncation_cutoff_only_touches_first_ws(nd: int) -> None:
    G = tiny(nd).build_generator()
    with torch.no_grad():
        G.mapping.w_avg.fill_(0.5)
        z = torch.randn(2, 16)
        full = G.mapping(z)
        cut = G.mapping(z, truncation_psi=0.0, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], torch.full_like(cut[:, :2], 0.5))
    torch.testing.assert_close(cut[:, 2:], full[:, 2:])


@pytest.mark.parametrize("nd", DIMS)
def test_split_generator_branches_are_independent_without_shuffle(nd: int) -> None:
    """Split G is two independent networks (Liu et al., arXiv 2208.03934 §3.3); shuffle makes the branches exchange features."""
    torch.manual_seed(0)
    for variant, independent in [("split", True), ("split_shuffle", False)]:
        G = tiny(nd, g=variant).build_generator()
        block = G.synthesis.blocks[1]
        x = torch.randn(1, 8, *G.synthesis.blocks[0].conv1.resolution)
        w = torch.randn(1, 16)
        x2 = x.clone()
        x2[:, 4:] += 1.0  # perturb the second branch's input only
        with torch.no_grad():
            a = block.conv1(block.conv0(x, w, "none"), w, "none")
            b = block.conv1(block.conv0(x2, w, "none"), w, "none")
        first_branch_unchanged = torch.allclose(a[:, :4], b[:, :4])
        assert first_branch_unchanged == independent, variant


@pytest.mark.parametrize("nd", DIMS)
def test_save_load_round_trip_bit_identical(nd: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    cfg = tiny(nd)
    G, D = cfg.build_generator(), cfg.build_discriminator()
    with torch.no_grad():
        G.mapping(torch.randn(4, cfg.z_dim), update_emas=True)  # buffers must travel too
    G.save_pretrained(tmp_path / "G")
    D.save_pretrained(tmp_path / "D")
    assert sorted(p.name for p in (tmp_path / "G").iterdir()) == ["config.json", "model.safetensors"]
    G2, D2 = Generator.from_pretrained(tmp_path / "G"), from_pretrained(tmp_path / "D")
    assert isinstance(D2, Discriminator)
    z = torch.randn(2, cfg.z_dim)
    img = torch.randn(2, *cfg.output_shape)
    with torch.no_grad():
        assert torch.equal(G(z, noise_mode="const"), G2(z, noise_mode="const"))
        assert torch.equal(
            G(z, truncation_psi=0.5, noise_mode="const"), G2(z, truncation_psi=0.5, noise_mode="const")
        )
        assert torch.equal(D(img), D2(img))
    with pytest.raises(ValueError, match="not a Generator"):
        Generator.from_pretrained(tmp_path / "D")


def test_from_pretrained_errors_name_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json.*not valid JSON"):
        from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"class": "os.system", "args": {}}')
    with pytest.raises(ValueError, match="unknown network class"):
        from_pretrained(tmp_path)
    tiny(2).build_generator().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        from_pretrained(tmp_path)


def test_2d_twin_has_the_same_layers_with_one_kernel_axis_less() -> None:
    """Inflation relies on this: every 3D tensor is its 2D twin's tensor with a depth axis added."""
    cfg3 = tiny(3)
    cfg2 = cfg3.twin_2d()
    assert cfg2 == dataclasses.replace(cfg3, spatial_dims=2, base_shape=(4, 4))
    for build in ("build_generator", "build_discriminator"):
        s3 = getattr(cfg3, build)().state_dict()
        s2 = getattr(cfg2, build)().state_dict()
        assert s3.keys() == s2.keys()
        for key in s3:
            t3, t2 = s3[key].shape, s2[key].shape
            if key.endswith(("noise_const",)):
                assert t3[1:] == t2
            elif key.endswith("const"):
                assert t3[0] == t2[0] and t3[2:] == t2[1:]
            elif key.endswith("fc.weight"):  # flattened C*d*h*w -> C*h*w
                assert t3[1] == t2[1] * 2
            elif len(t3) >= 4:  # conv kernels [out, in, (k), k, k]
                assert t3[:2] == t2[:2] and t3[3:] == t2[2:]
            else:
                assert t3 == t2, key


def _g_outputs(G: Generator, z: torch.Tensor) -> list[torch.Tensor]:
    G.zero_grad()
    img = G(z, noise_mode="const")
    img.square().sum().backward()
    return [img.detach(), *(p.grad.clone() for p in G.parameters() if p.grad is not None)]


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("g", G_VARIANTS)
@pytest.mark.parametrize("architecture", ["skip", "orig"])
def test_generator_fused_and_nonfused_modulated_conv_agree(
    nd: int, g: str, architecture: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Both forms of the modulated conv give G the same image and gradients (float64: to 1e-10)."""
    from medgan3d.networks import layers

    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny(nd, g=g), g_architecture=architecture)
    G = cfg.build_generator().double()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.2)
    z = torch.randn(3, cfg.z_dim, dtype=torch.float64)
    results = []
    for fused in (True, False):
        monkeypatch.setitem(layers._FUSED_DEFAULT, "cpu", fused)
        results.append(_g_outputs(G, z))
    assert len(results[0]) == len(results[1]) > 10
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("up", [False, True])
def test_split_shuffle_layer_is_the_shuffled_split_layer(nd: int, up: bool) -> None:
    """The S&S layer writes its shuffle inside the bias/activation pass; it equals the split layer's output
    shuffled afterwards (Liu et al., arXiv 2208.03934 Fig. 3), bit for bit."""
    from medgan3d.networks.layers import channel_shuffle
    from medgan3d.networks.stylegan import SynthesisLayer

    torch.manual_seed(5)
    res = (4, 8, 8)[-nd:] if up else (2, 4, 4)[-nd:]
    split = SynthesisLayer(8, 8, 16, res, nd, up=up, variant="split")
    shuffled = SynthesisLayer(8, 8, 16, res, nd, up=up, variant="split_shuffle")
    shuffled.load_state_dict(split.state_dict())
    x, w = torch.randn(2, 8, *(r // 2 if up else r for r in res)), torch.randn(2, 16)
    with torch.no_grad():
        split.bias.normal_()
        shuffled.bias.copy_(split.bias)
        assert torch.equal(shuffled(x, w, "const"), channel_shuffle(split(x, w, "const"), 2))
