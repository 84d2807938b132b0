"""2D → 3D weight inflation (Liu et al., arXiv 2208.03934 §3.2, Eq. 3–7): formulas, depth-exactness, transfer, refusals, CLI."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from medgan3d.config import ModelConfig
from medgan3d.inflate import (
    STRATEGIES,
    InflationError,
    inflate_checkpoint,
    inflate_kernel,
    inflate_network,
    inflate_state_dict,
    nwi_alphas,
)
from medgan3d.networks.layers import Conv, channel_shuffle
from medgan3d.networks.stylegan import SynthesisLayer

KERNEL_STRATEGIES = [s for s in STRATEGIES if s != "none"]


def tiny3d(
    channels: int = 8, g: str = "split_shuffle", d: str = "split_shuffle", **kw: object
) -> ModelConfig:
    return ModelConfig(
        spatial_dims=3,
        base_shape=(4, 4, 4),
        num_blocks=3,
        channels=channels,
        z_dim=16,
        w_dim=16,
        mapping_layers=2,
        g_variant=g,
        d_variant=d,
        mbstd_group_size=4,
        **kw,
    )


def built(cfg: ModelConfig, seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    return cfg.build_generator(), cfg.build_discriminator()


# --------------------------------------------------------------------------------------------------
# Eq. 3–7 on single kernels
# --------------------------------------------------------------------------------------------------


def expected_planes(strategy: str) -> dict[int, float]:
    """Depth plane → multiple of w2 that Eq. 3–7 put there (planes not listed stay random)."""
    return {
        "inflate-1": {1: 1.0},
        "inflate-2": {0: 1.0, 1: 1.0},
        "inflate-3": {0: 1.0, 1: 1.0, 2: 1.0},
        "inflate-nwi": {0: -1 / 3, 1: 5 / 3, 2: -1 / 3},
    }.get(strategy, {})


@pytest.mark.parametrize("strategy", ["inflate-1", "inflate-2", "inflate-3", "inflate-nwi", "none"])
def test_depth_strategies_follow_eq_3_to_5_and_7(strategy: str) -> None:
    w2 = torch.randn(64, 32, 3, 3)
    w3 = inflate_kernel(w2, 3, strategy, init_std=0.1, generator=torch.Generator().manual_seed(0))
    assert w3.shape == (64, 32, 3, 3, 3)
    planes = expected_planes(strategy)
    for i in range(3):
        if i in planes:
            torch.testing.assert_close(w3[:, :, i], planes[i] * w2, rtol=0, atol=1e-6)
        else:  # still the N(0, 0.1) draw
            assert abs(w3[:, :, i].std().item() - 0.1) < 0.005
            assert abs(w3[:, :, i].mean().item()) < 0.005


def test_asc_follows_eq_6_in_order() -> None:
    w2 = torch.randn(8, 4, 3, 3)
    w3 = inflate_kernel(w2, 3, "inflate-asc", init_std=0.1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(w3[:, :, :, :, 1], w2)  # last assignment of Eq. 6 wins where planes cross
    off = [0, 2]
    torch.testing.assert_close(w3[:, :, :, 1, :][..., off], w2[..., off])
    torch.testing.assert_close(w3[:, :, 1, :, :][:, :, off][..., off], w2[:, :, off][..., off])
    corners = w3[:, :, off][:, :, :, off][..., off]  # outside the three centre planes: the random draw
    assert corners.abs().max() < 0.6 and corners.std() < 0.15


def test_nwi_alphas_and_one_tap_kernels() -> None:
    assert nwi_alphas(3) == pytest.approx([-1 / 3, 5 / 3, -1 / 3])  # T = 3, Eq. 7
    assert sum(nwi_alphas(3)) == pytest.approx(1.0)
    w2 = torch.randn(4, 4, 1, 1)
    for strategy in KERNEL_STRATEGIES:  # 1x1 kernels have one depth tap: copied by every strategy
        torch.testing.assert_close(inflate_kernel(w2, 1, strategy)[:, :, 0], w2)
    with pytest.raises(InflationError, match="odd"):
        inflate_kernel(torch.randn(2, 2, 4, 4), 4, "inflate-1")


# --------------------------------------------------------------------------------------------------
# Whole networks: every tensor follows its documented rule
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", KERNEL_STRATEGIES)
@pytest.mark.parametrize(("g", "d"), [("split_shuffle", "split_shuffle"), ("baseline", "depthwise")])
def test_every_tensor_of_inflated_networks_follows_its_rule(strategy: str, g: str, d: str) -> None:
    cfg = tiny3d(g=g, d=d)
    G2, D2 = built(cfg.twin_2d(), 0)
    for net2, (net3, kind) in [(G2, (cfg.build_generator(), "G")), (D2, (cfg.build_discriminator(), "D"))]:
        inflate_network(net2, net3, strategy, init_std=0.1, generator=torch.Generator().manual_seed(1))
        sd2, sd3 = net2.state_dict(), net3.state_dict()
        for key, t3 in sd3.items():
            t2 = sd2[key]
            if t3.shape == t2.shape:
                torch.testing.assert_close(t3, t2, msg=key)
            elif key.endswith("const"):  # learned constant and constant noise: replicated along depth
                axis = 1 if key.endswith(".const") else 0
                torch.testing.assert_close(t3, t2.unsqueeze(axis).expand_as(t3), msg=key)
            elif key == "epilogue.fc.weight":  # replicated over d and divided by d (run-time units)
                depth = cfg.base_shape[0]
                run3 = (t3 / math.sqrt(t3.shape[1])).reshape(t3.shape[0], cfg.channels, depth, -1)  # type: ignore[arg-type]
                run2 = (t2 / math.sqrt(t2.shape[1])).reshape(t2.shape[0], cfg.channels, 1, -1)  # type: ignore[arg-type]
                torch.testing.assert_close(run3, run2.expand_as(run3) / depth)
            else:
                k = t3.shape[2]
                scale = (
                    math.sqrt(k) if kind == "D" else 1.0
                )  # D convs: equalized-lr gain 1/√fan_in compensated
                if k == 1:
                    torch.testing.assert_close(t3[:, :, 0], t2, msg=key)
                elif strategy != "inflate-asc":
                    for i, mult in expected_planes(strategy).items():
                        torch.testing.assert_close(t3[:, :, i], mult * scale * t2, msg=key)


@pytest.mark.parametrize("net", ["G", "D"])
def test_nwi_keeps_the_depth_sum_of_every_kernel(net: str) -> None:
    cfg = tiny3d(g="split_shuffle", d="baseline")
    G2, D2 = built(cfg.twin_2d(), 0)
    net2, net3 = (G2, cfg.build_generator()) if net == "G" else (D2, cfg.build_discriminator())
    inflate_network(net2, net3, "inflate-nwi", equalized_lr="stored")  # stored units: no √k factor
    sd2 = net2.state_dict()
    kernels = [(k, t) for k, t in net3.state_dict().items() if t.ndim == 5]
    assert len(kernels) >= 6
    for key, t3 in kernels:
        torch.testing.assert_close(t3.sum(dim=2), sd2[key], rtol=1e-5, atol=1e-5, msg=key)


def test_none_leaves_a_fresh_random_init() -> None:
    cfg = tiny3d()
    G2, D2 = built(cfg.twin_2d(), 0)
    G3, D3 = built(cfg, 7)
    before = {k: v.clone() for k, v in {**G3.state_dict(), **D3.state_dict()}.items()}
    inflate_network(G2, G3, "none")
    inflate_network(D2, D3, "none")
    after = {**G3.state_dict(), **D3.state_dict()}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(G3.mapping.layers[0].weight, G2.mapping.layers[0].weight)  # nothing was copied


# --------------------------------------------------------------------------------------------------
# Depth-constant inputs: the inflated 3D layer reproduces the 2D layer on interior slices
# --------------------------------------------------------------------------------------------------

# For a depth-constant input a 3D conv computes the 2D conv with the depth-sum of its kernel. D convs run with
# the compensated gain, so the factor is Σα; demodulated synthesis convs divide by the 3D kernel norm,
# so the factor is Σα / √(Σα²) (docs/inflation.md).
DEPTH_FACTORS = {  # strategy: (D conv factor, modulated conv factor), with init_std = 0 for 1 and 2
    "inflate-nwi": (1.0, 1 / math.sqrt(3)),
    "inflate-3": (3.0, math.sqrt(3)),
    "inflate-1": (1.0, 1.0),
    "inflate-2": (2.0, math.sqrt(2)),
}


def depth_constant(x2: Tensor, depth: int) -> Tensor:
    return x2.unsqueeze(2).expand(*x2.shape[:2], depth, *x2.shape[2:]).contiguous()


@pytest.mark.parametrize("strategy", list(DEPTH_FACTORS))
@pytest.mark.parametrize("variant", ["baseline", "group", "depthwise", "split_shuffle"])
@pytest.mark.parametrize("down", [1, 2])
def test_inflated_d_conv_reproduces_2d_conv_on_depth_constant_input(
    strategy: str, variant: str, down: int
) -> None:
    torch.manual_seed(0)
    conv2 = Conv(8, 8, 3, 2, activation="linear", down=down, variant=variant)
    conv3 = Conv(8, 8, 3, 3, activation="linear", down=down, variant=variant)
    sd = inflate_state_dict(
        {f"epilogue.{k}": v for k, v in conv2.state_dict().items()},  # a D-owned tensor: gains compensated
        {f"epilogue.{k}": v for k, v in conv3.state_dict().items()},
        strategy,
        init_std=0.0,
    )
    conv3.load_state_dict({k.removeprefix("epilogue."): v for k, v in sd.items()})
    factor = torch.full((8,), DEPTH_FACTORS[strategy][0])
    if variant == "split_shuffle":
        factor[4:] = 1.0  # the 1x1x1 branch has one depth tap: copied, factor 1 whatever the strategy
    with torch.no_grad():
        conv2.bias.normal_()
        conv3.bias.copy_(conv2.bias * factor)
        x2 = torch.randn(2, 8, 16, 16)
        y2, y3 = conv2(x2), conv3(depth_constant(x2, 12))
    if variant == "split_shuffle":
        factor = channel_shuffle(factor.reshape(1, 8), 2).flatten()
    interior = y3[:, :, 2:-2]
    expected = factor.reshape(1, 8, 1, 1, 1) * y2.unsqueeze(2).expand_as(interior)
    torch.testing.assert_close(interior, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strategy", list(DEPTH_FACTORS))
@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("variant", ["baseline", "split_shuffle"])
def test_inflated_modulated_layer_reproduces_2d_layer_on_depth_constant_input(
    strategy: str, up: bool, variant: str
) -> None:
    torch.manual_seed(0)
    res2 = (16, 16) if up else (8, 8)
    layer2 = SynthesisLayer(8, 8, 16, res2, 2, up=up, variant=variant)
    layer3 = SynthesisLayer(8, 8, 16, (12, *res2), 3, up=up, variant=variant)
    with torch.no_grad():
        layer3.affine.load_state_dict(layer2.affine.state_dict())
        layer3.weight.copy_(inflate_kernel(layer2.weight, 3, strategy, init_std=0.0))
        x2, w = torch.randn(2, 8, 8, 8), torch.randn(2, 16)
        y2 = layer2(x2, w, noise_mode="none")  # bias 0: lrelu is positively homogeneous
        y3 = layer3(depth_constant(x2, 6 if up else 12), w, noise_mode="none")
    interior = y3[:, :, 2:-2]
    expected = DEPTH_FACTORS[strategy][1] * y2.unsqueeze(2).expand_as(interior)
    torch.testing.assert_close(interior, expected, rtol=1e-4, atol=1e-4)


def test_fc_choice_gives_the_2d_logit_for_depth_constant_features() -> None:
    cfg = tiny3d()
    _, D2 = built(cfg.twin_2d(), 0)
    D3 = cfg.build_discriminator()
    inflate_network(D2, D3, "inflate-1")
    feats2 = torch.randn(3, 8, 4, 4)
    with torch.no_grad():
        out2 = D2.epilogue.out(D2.epilogue.fc(feats2.flatten(1)))
        out3 = D3.epilogue.out(D3.epilogue.fc(depth_constant(feats2, 4).flatten(1)))
    torch.testing.assert_close(out3, out2, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------------
# A trained 2D twin: inflation transfers what it learned (Liu et al., arXiv 2208.03934 Fig. 4–5 at kimg 0)
# --------------------------------------------------------------------------------------------------


def discs(n: int, gen: torch.Generator) -> Tensor:
    """Soft bright discs of random centre and radius on a dark background, 16×16 in [-1, 1]."""
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    cy, cx = torch.rand(n, 1, 1, generator=gen) * 8 + 4, torch.rand(n, 1, 1, generator=gen) * 8 + 4
    r = torch.rand(n, 1, 1, generator=gen) * 3 + 2.5
    return (torch.sigmoid(2 * (r - ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt())) * 2 - 1).unsqueeze(1)


def train_2d_twin(
    cfg: ModelConfig, steps: int = 200, batch: int = 8
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A minimal non-saturating GAN loop with lazy R1 (every 4 D steps), Adam (0, 0.99), lr 2e-3."""
    G, D = built(cfg, 0)
    gen = torch.Generator().manual_seed(0)
    opt_g = torch.optim.Adam(G.parameters(), 2e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), 2e-3, betas=(0.0, 0.99))
    for step in range(steps):
        loss_g = F.softplus(-D(G(torch.randn(batch, cfg.z_dim)))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        real = discs(batch, gen).requires_grad_(step % 4 == 0)
        logits = D(real)
        loss_d = F.softplus(D(G(torch.randn(batch, cfg.z_dim)).detach())).mean() + F.softplus(-logits).mean()
        if step % 4 == 0:
            (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
            loss_d = loss_d + 4 * 0.05 / 2 * grad.square().sum(dim=(1, 2, 3)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
    return G.eval(), D.eval()


@pytest.fixture(scope="module")
def trained_2d() -> tuple[ModelConfig, torch.nn.Module, torch.nn.Module]:
    cfg = tiny3d()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: one thread is as fast, and the CPU is shared
    try:
        G2, D2 = train_2d_twin(cfg.twin_2d())
    finally:
        torch.set_num_threads(threads)
    return cfg, G2, D2


def frechet(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples)."""
    a, b = a.double(), b.double()
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    root = torch.linalg.eigvals(ca @ cb).real.clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + ca.trace() + cb.trace() - 2 * root)


def slice_similarity(G2: torch.nn.Module, G3: torch.nn.Module, n: int = 128) -> dict[str, float]:
    """Axial slices of G3(z) vs G2(z): paired MSE and correlation (interior slices), and the Fréchet distance
    between 4×4-pooled centre slices and 4×4-pooled 2D images (a pixel-space FID-ax against G2)."""
    z = torch.randn(n, G2.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        img, vol = G2(z, noise_mode="const"), G3(z, noise_mode="const")
    slices = vol[:, :, 2:-2]
    ref = img.unsqueeze(2).expand_as(slices)
    sc, rc = slices - slices.mean(dim=(3, 4), keepdim=True), ref - ref.mean(dim=(3, 4), keepdim=True)
    corr = (sc * rc).sum(dim=(3, 4)) / (sc.norm(dim=(3, 4)) * rc.norm(dim=(3, 4)) + 1e-8)
    centre = vol[:, :, vol.shape[2] // 2]
    return {
        "mse": float((slices - ref).square().mean()),
        "corr": float(corr.mean()),
        "fd": frechet(F.avg_pool2d(centre, 4).flatten(1), F.avg_pool2d(img, 4).flatten(1)),
    }


def test_inflated_generator_slices_resemble_the_trained_2d_generator(trained_2d) -> None:  # type: ignore[no-untyped-def]
    cfg, G2, _ = trained_2d
    scores = {}
    for strategy in STRATEGIES:
        torch.manual_seed(1)
        G3 = cfg.build_generator()
        inflate_network(G2, G3, strategy, generator=torch.Generator().manual_seed(2))
        scores[strategy] = slice_similarity(G2, G3)
    print("\nstrategy      paired-MSE  paired-corr  FD(centre slice, 2D G)")
    for strategy, s in scores.items():
        print(f"{strategy:12s} {s['mse']:10.3f} {s['corr']:12.3f} {s['fd']:12.2f}")
    none = scores["none"]
    for strategy in ("inflate-1", "inflate-nwi"):
        assert scores[strategy]["mse"] < 0.5 * none["mse"], strategy
        assert scores[strategy]["corr"] > none["corr"] + 0.3, strategy
    assert scores["inflate-1"]["fd"] < 0.25 * none["fd"]
    assert scores["inflate-1"]["corr"] > 0.9


def test_nwi_inflated_trained_discriminator_matches_2d_logits(trained_2d) -> None:  # type: ignore[no-untyped-def]
    cfg, _, D2 = trained_2d
    x2 = discs(16, torch.Generator().manual_seed(3))
    logits2 = D2(x2).detach().flatten()
    results = {}
    for strategy in ("inflate-nwi", "inflate-1", "none"):
        torch.manual_seed(1)
        D3 = cfg.build_discriminator()
        inflate_network(D2, D3, strategy, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            logits3 = D3(depth_constant(x2, 16)).flatten()
        rel = float((logits3 - logits2).norm() / logits2.norm())
        results[strategy] = (float(torch.corrcoef(torch.stack([logits2, logits3]))[0, 1]), rel)
    print("\nD logits on depth-constant volumes vs 2D logits (corr, rel. error):", results)
    corr, rel = results["inflate-nwi"]
    assert (
        corr > 0.95 and rel < 0.25
    )  # not exact: zero padding at the depth boundaries reaches the 4-deep base
    assert results["none"][1] > 2 * rel


# --------------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (dict(channels=16), "channels"),
        (dict(g_variant="baseline", d_variant="baseline"), "variant"),
        (dict(mapping_layers=3), "mapping_layers"),
        (dict(base_shape=(4, 8, 8)), "base_shape"),
    ],
)
def test_mismatched_architectures_are_refused(change: dict, named: str) -> None:
    cfg = tiny3d()
    G2, D2 = built(dataclasses.replace(cfg, **change).twin_2d(), 0)
    G3, D3 = built(cfg, 0)
    with pytest.raises(InflationError, match=named):
        inflate_network(G2, G3, "inflate-1")
    if named != "mapping_layers":
        with pytest.raises(InflationError, match=named):
            inflate_network(D2, D3, "inflate-1")


def test_non_twin_pairs_and_bad_arguments_are_refused() -> None:
    cfg = tiny3d()
    G2, D2 = built(cfg.twin_2d(), 0)
    G3, D3 = built(cfg, 0)
    with pytest.raises(InflationError, match="class"):
        inflate_network(G2, D3, "inflate-1")
    with pytest.raises(InflationError, match="not 2"):
        inflate_network(G3, built(cfg, 1)[0], "inflate-1")
    with pytest.raises(InflationError, match="unknown inflation strategy"):
        inflate_network(G2, G3, "inflate-4")
    with pytest.raises(InflationError, match="only in 3D"):
        sd2 = {k: v for k, v in D2.state_dict().items() if k != "epilogue.out.bias"}
        inflate_state_dict(sd2, D3.state_dict(), "inflate-1")
    with pytest.raises(InflationError, match=r"epilogue\.out\.weight"):
        sd2 = dict(D2.state_dict(), **{"epilogue.out.weight": torch.zeros(1, 3)})
        inflate_state_dict(sd2, D3.state_dict(), "inflate-1")


# --------------------------------------------------------------------------------------------------
# Checkpoints and CLI
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def ckpt_2d(tmp_path: Path) -> tuple[ModelConfig, Path]:
    cfg = tiny3d()
    G2, D2 = built(cfg.twin_2d(), 0)
    ckpt = tmp_path / "run2d" / "checkpoints" / "ckpt-000001000"
    for name, net in (("G", G2), ("G_ema", G2), ("D", D2)):
        net.save_pretrained(ckpt / name)
    return cfg, ckpt


def test_inflate_checkpoint_parts_and_loading(ckpt_2d: tuple[ModelConfig, Path], tmp_path: Path) -> None:
    from medgan3d.modeling import from_pretrained
    from medgan3d.training.checkpoint import load_generator

    cfg, ckpt = ckpt_2d
    fresh = inflate_checkpoint(ckpt, cfg, "none", seed=3)
    only_g = inflate_checkpoint(
        ckpt.parent.parent, cfg, "inflate-1", parts="G", out_dir=tmp_path / "g", seed=3
    )
    only_d = inflate_checkpoint(ckpt, cfg, "inflate-1", parts="D", seed=3)
    G2 = from_pretrained(ckpt / "G")
    for part, nets in (("G", only_g), ("D", only_d)):
        for name in ("G", "G_ema", "D"):
            same = all(
                torch.equal(a, b)
                for a, b in zip(
                    nets[name].state_dict().values(), fresh[name].state_dict().values(), strict=True
                )
            )
            assert same == (name[0] not in part), (part, name)
    torch.testing.assert_close(only_g["G"].state_dict(), only_g["G_ema"].state_dict())
    loaded = load_generator(tmp_path / "g")
    assert loaded.img_shape == (1, 16, 16, 16)
    torch.testing.assert_close(loaded.mapping.layers[0].weight, G2.mapping.layers[0].weight)
    assert (tmp_path / "g" / "inflation.json").is_file()
    with pytest.raises(FileExistsError, match="already exists"):
        inflate_checkpoint(ckpt, cfg, "inflate-1", out_dir=tmp_path / "g")


def test_inflate_checkpoint_refuses_a_3d_source(tmp_path: Path) -> None:
    cfg = tiny3d()
    G3, D3 = built(cfg, 0)
    for name, net in (("G", G3), ("D", D3)):
        net.save_pretrained(tmp_path / "c3" / name)
    with pytest.raises(InflationError, match=r"G/config\.json: spatial_dims is 3"):
        inflate_checkpoint(tmp_path / "c3", cfg, "inflate-1")
    with pytest.raises(InflationError, match="spatial_dims=2"):
        inflate_checkpoint(tmp_path / "c3", cfg.twin_2d(), "inflate-1")


def test_cli_writes_a_loadable_3d_checkpoint(ckpt_2d: tuple[ModelConfig, Path], tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from medgan3d.cli.inflate import inflate
    from medgan3d.training.checkpoint import load_generator

    cfg, ckpt = ckpt_2d
    model = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    preset = tmp_path / "tiny3d.yaml"
    preset.write_text(yaml.safe_dump({"name": "tiny3d", "model": model}))
    import typer

    app = typer.Typer()
    app.command()(inflate)
    args = [str(ckpt), "--config", str(preset), "--strategy", "inflate-nwi", "--parts", "GD", "--seed", "1"]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert load_generator(tmp_path / "out").img_shape == (1, 16, 16, 16)
    bad = CliRunner().invoke(app, [*args[:4], "inflate-9", "-o", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "unknown inflation strategy" in bad.output
    wrong = tmp_path / "wide.yaml"
    wrong.write_text(yaml.safe_dump({"name": "wide", "model": dict(model, channels=16)}))
    mismatch = CliRunner().invoke(app, [str(ckpt), "--config", str(wrong), "-o", str(tmp_path / "w")])
    assert mismatch.exit_code == 1 and "channels: 2D 8 vs 3D 16" in mismatch.output
    assert "ckpt-000001000" in mismatch.output
    assert not (tmp_path / "w").exists()


def test_inflate_checkpoint_is_seeded_and_leaves_the_global_rng_alone(
    ckpt_2d: tuple[ModelConfig, Path],
) -> None:
    cfg, ckpt = ckpt_2d
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = inflate_checkpoint(ckpt, cfg, "inflate-asc", seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    b = inflate_checkpoint(ckpt, cfg, "inflate-asc", seed=4)
    c = inflate_checkpoint(ckpt, cfg, "inflate-asc", seed=5)
    for name in ("G", "D"):
        torch.testing.assert_close(a[name].state_dict(), b[name].state_dict())
        kernel = "synthesis.blocks.1.conv1.weight" if name == "G" else "blocks.0.conv0.weight"
        assert not torch.equal(a[name].state_dict()[kernel], c[name].state_dict()[kernel])
