"""StyleGAN2 projection (schedule, N-D noise regulariser, recovery of a known w) and 3D-StyleGAN's geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgan3d.config import load_preset
from medgan3d.latents import noise_layers, render, seed_latent, style_bands, w_layers
from medgan3d.networks.layers import upsample_fir
from medgan3d.networks.stylegan import check_generator_shape, nearest_generator_shape
from medgan3d.project import (
    ProjectorConfig,
    learning_rate,
    noise_regularizer,
    project_volume,
    reconstruction_metrics,
    w_noise_scale,
    w_statistics,
)
from tests.models import small_generator

# --------------------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    "step, factor", [(0, 0.0), (25, 0.5), (50, 1.0), (400, 1.0), (750, 1.0), (900, 0.3454915), (1000, 0.0)]
)
def test_learning_rate_ramps(step: int, factor: float) -> None:
    assert learning_rate(step, 1000, 0.1) == pytest.approx(0.1 * factor, abs=1e-7)
    assert learning_rate(step, 1000, 0.3) == pytest.approx(0.3 * factor, abs=1e-7)


@pytest.mark.parametrize("step, factor", [(0, 0.05), (375, 0.0125), (750, 0.0), (900, 0.0)])
def test_w_noise_ramp(step: int, factor: float) -> None:
    assert w_noise_scale(step, 1000, w_std=2.0) == pytest.approx(2.0 * factor, abs=1e-12)


def test_named_settings() -> None:
    ref = ProjectorConfig.named("3dstylegan")
    assert (ref.lr, ref.noise_reg, ref.noise_reg_min, ref.space, ref.weights()) == (
        0.3,
        0.0,
        10,
        "w",
        {"mse255": 1.0, "pooled_mse255": 1.0},
    )
    assert ProjectorConfig.named("3dstylegan", lr=0.05).lr == 0.05
    default = ProjectorConfig()
    assert (default.lr, default.steps, default.w_avg_samples, default.w_avg_seed, default.noise) == (
        0.1,
        1000,
        10_000,
        123,
        "optimize",
    )
    assert default.noise_reg > 0  # the regulariser is on
    with pytest.raises(ValueError, match="loss must be one of"):
        ProjectorConfig(loss="lpips")
    with pytest.raises(ValueError, match="space"):
        ProjectorConfig(space="z")


# --------------------------------------------------------------------------------------------- regulariser


def stylegan2_ada_reg(maps: list[torch.Tensor]) -> torch.Tensor:
    """The 2D formula of StyleGAN2-ADA's projector, written out: two axes, 2×2 average pooling, stop at H <= 8."""
    reg = torch.zeros(())
    for v in maps:
        noise = v[None, None, :, :]
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


def test_noise_regulariser_is_the_2d_formula_in_2d() -> None:
    gen = torch.Generator().manual_seed(1)
    maps = [torch.randn(s, s, generator=gen) for s in (4, 8, 16, 32, 64, 128)]
    maps[2] = maps[2] + 0.5 * torch.roll(maps[2], 1, 0)  # a correlated map, far from the minimum
    assert float(noise_regularizer(maps)) == pytest.approx(float(stylegan2_ada_reg(maps)), rel=1e-6)


def test_noise_regulariser_in_3d() -> None:
    d = torch.arange(16).reshape(16, 1, 1).expand(16, 16, 16)
    alternating = (-1.0) ** d.float()  # roll along D: -1 everywhere; along H, W: +1; pooled: 0
    assert float(noise_regularizer([alternating])) == pytest.approx(3.0)
    assert float(noise_regularizer([torch.ones(5, 6, 7)])) == pytest.approx(3.0)  # one scale only


def test_w_statistics() -> None:
    G = small_generator()
    w_avg, w_std = w_statistics(G, samples=500, seed=123)
    again = w_statistics(G, samples=500, seed=123)
    z = torch.randn(500, G.z_dim, generator=torch.Generator().manual_seed(123))
    ws = G.mapping(z)[:, 0].double()
    assert torch.equal(w_avg, again[0]) and w_std == again[1]
    torch.testing.assert_close(w_avg.double(), ws.mean(0), rtol=1e-5, atol=1e-6)
    assert w_std == pytest.approx(float(((ws - ws.mean(0)) ** 2).sum(1).mean().sqrt()), rel=1e-6)


# --------------------------------------------------------------------------------------------- projection


def test_projection_recovers_a_generated_volume() -> None:
    """A volume G made from a known w and its own constant noise; projecting w only finds it again."""
    G = small_generator()
    known = seed_latent(G, 5)
    target = torch.from_numpy(render(G, known.ws, "const"))[None, None]
    cfg = ProjectorConfig(steps=250, loss="mse", noise="const", w_avg_samples=2000, snapshots=0)
    proj = project_volume(G, target, cfg)
    rec = torch.from_numpy(render(G, proj.ws, proj.render_noise))[None, None]
    scores = reconstruction_metrics(rec, target)
    start = reconstruction_metrics(
        torch.from_numpy(render(G, w_statistics(G, 2000)[0], "const"))[None, None], target
    )
    assert scores["psnr_db"] > 40 > start["psnr_db"] + 10, (scores, start)
    assert scores["ssim"] > 0.999
    assert proj.w is not None and torch.equal(proj.ws, proj.w.expand(G.num_ws, -1))
    assert proj.history[0]["lr"] == 0.0 and proj.history[-1]["step"] == 249


def test_projection_in_w_plus_optimises_renormalised_noise() -> None:
    G = small_generator(architecture="orig")
    target = torch.from_numpy(render(G, seed_latent(G, 2).ws, "const"))[None, None]
    seen: list[int] = []
    cfg = ProjectorConfig(steps=12, space="w+", w_avg_samples=200, snapshots=3)
    proj = project_volume(G, target, cfg, snapshot=lambda step, vol: seen.append(step))
    assert seen == [0, 4, 8, 11]
    assert proj.w is None and proj.ws.shape == (G.num_ws, G.w_dim)
    assert not torch.equal(proj.ws[0], proj.ws[-1])  # one w per layer
    assert proj.noise is not None and len(proj.noise) == len(noise_layers(G))
    for m in proj.noise:
        assert abs(float(m.mean())) < 1e-5 and float(m.square().mean()) == pytest.approx(1.0, rel=1e-4)
    assert all("noise_reg" in row and "ssim" in row and "mse" in row for row in proj.history)
    # the generator itself kept its constant noise (the projector works on a copy)
    assert all(not layer.noise_const.requires_grad for layer in noise_layers(G))


# --------------------------------------------------------------------------------------------- geometry


def test_3dstylegan_2mm_layers_and_bands() -> None:
    G = load_preset("3dstylegan-2mm").model.build_generator()
    assert G.num_ws == 10 and G.img_shape == (1, 80, 96, 112) and G.w_dim == G.z_dim == 128
    shapes = [(5, 6, 7), (10, 12, 14), (20, 24, 28), (40, 48, 56), (80, 96, 112)]
    expected = [
        shapes[0],
        shapes[1],
        shapes[1],
        shapes[2],
        shapes[2],
        shapes[3],
        shapes[3],
        shapes[4],
        shapes[4],
        shapes[4],
    ]
    layers = w_layers(G)
    assert [w.resolution for w in layers] == expected
    assert layers[9].layers == ("b4.torgb",) and layers[0].layers == ("b0.conv1",)
    assert sum(1 for b in G.synthesis.blocks if b.torgb is not None) == 1  # orig: one output layer
    assert [tuple(layer.resolution) for layer in noise_layers(G)] == expected[:9]
    assert style_bands(G) == {"coarse": (0, 1, 2), "middle": (3, 4, 5, 6), "fine": (7, 8, 9)}
    G1 = load_preset("3dstylegan-1mm").model.build_generator()
    assert G1.num_ws == 12 and len(noise_layers(G1)) == 11 and G1.img_shape == (1, 160, 192, 224)
    assert style_bands(G1) == {"coarse": (0, 1, 2), "middle": (3, 4, 5, 6), "fine": (7, 8, 9, 10, 11)}


@pytest.mark.parametrize(
    "name, channels, latent",
    [
        ("3dstylegan-2mm", 96, 128),
        ("3dstylegan-2mm-f16", 16, 96),
        ("3dstylegan-2mm-f128", 128, 128),
        ("3dstylegan-1mm", 18, 96),
        ("3dstylegan-1mm-f16", 16, 96),
        ("3dstylegan-1mm-f24", 24, 96),
    ],
)
def test_3dstylegan_presets(name: str, channels: int, latent: int) -> None:
    preset = load_preset(name)
    m = preset.model
    assert (m.channels, m.z_dim, m.w_dim, m.g_architecture, m.base_shape) == (
        channels,
        latent,
        latent,
        "orig",
        (5, 6, 7),
    )
    train = preset.train
    assert (train.lr, train.ema_kimg, train.ema_rampup, train.loss.r1_gamma) == (0.002, 10, None, 10)
    assert preset.data_preset == f"brain-t1-{name.split('-')[1]}"


def test_orig_generator_runs_and_differs_from_skip() -> None:
    orig, skip = small_generator("orig"), small_generator("skip")
    assert [b.torgb is None for b in orig.synthesis.blocks] == [True, True, False]
    ws = seed_latent(orig, 0).ws
    vol = render(orig, ws)
    assert vol.shape == (8, 8, 8) and np.isfinite(vol).all()
    assert sum(p.numel() for p in skip.parameters()) > sum(p.numel() for p in orig.parameters())


@pytest.mark.parametrize("nd", [2, 3])
def test_upsampling_keeps_a_constant(nd: int) -> None:
    x = torch.full((1, 2, *([8] * nd)), 0.75)
    y = upsample_fir(x, nd)
    inner = y[(..., *[slice(2, -2)] * nd)]  # away from the zero padding at the borders
    assert y.shape[2:] == (16,) * nd
    torch.testing.assert_close(inner, torch.full_like(inner, 0.75), rtol=0, atol=1e-6)


def test_nearest_valid_shape() -> None:
    assert nearest_generator_shape((81, 96, 112), (5, 6, 7)) == ((80, 96, 112), 4)
    assert nearest_generator_shape((256, 256, 256), (5, 6, 7)) == ((160, 192, 224), 5)
    assert check_generator_shape((160, 192, 224), (5, 6, 7)) == 5
    with pytest.raises(ValueError, match=r"81×96×112 is not base 5×6×7 · 2\^k.*nearest is 80×96×112 \(k = 4"):
        check_generator_shape((81, 96, 112), (5, 6, 7))


def test_brain_t1_presets() -> None:
    from medgan3d.data import get_preset, preprocess
    from medgan3d.data.io import VolumeMeta, spacing_affine

    with pytest.raises(ValueError, match="nearest is 80×96×112"):
        get_preset("brain-t1-2mm", shape=(81, 96, 112))
    cfg = get_preset("brain-t1-2mm")
    assert (cfg.shape, cfg.spacing) == ((80, 96, 112), (2.0, 2.0, 2.0))
    assert get_preset("brain-t1-1mm").shape == (160, 192, 224)
    rng = np.random.default_rng(0)
    scan = rng.normal(100, 10, (150, 180, 170)).astype(np.float32)  # 1.2 mm voxels: 180 x 216 x 204 mm
    spacing = (1.2, 1.2, 1.2)
    meta = VolumeMeta(spacing=spacing, affine=spacing_affine(spacing, scan.shape), orientation_in="RAS")
    out, info = preprocess(scan, meta, cfg, "scan")
    assert out.shape == (80, 96, 112) and out.min() >= -1 and out.max() <= 1
    np.testing.assert_allclose(info["spacing"], 2.0, rtol=0.02)
    np.testing.assert_allclose(np.abs(np.diag(np.asarray(info["affine"]))[:3]), 2.0, rtol=0.02)
