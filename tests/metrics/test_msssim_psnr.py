"""MS-SSIM and PSNR against MONAI's independent implementations on the same volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgan3d.metrics.msssim import WANG_WEIGHTS, ms_ssim, ms_ssim_pairs, msssim_config, sample_pairs
from medgan3d.metrics.psnr import nearest_real_psnr

monai_regression = pytest.importorskip("monai.metrics.regression")


def _smooth(n: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Smooth random volumes in [-1, 1] (blurred noise), so SSIM is far from both 0 and 1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, *shape, generator=g)
    pool = F.avg_pool3d if len(shape) == 3 else F.avg_pool2d
    return torch.tanh(2 * pool(x, 3, stride=1, padding=1))


@pytest.mark.parametrize("shape", [(32, 32, 32), (32, 48, 40), (64, 64)])
def test_ms_ssim_matches_monai(shape: tuple[int, ...]) -> None:
    x, y = _smooth(3, shape, 0), _smooth(3, shape, 1)
    y = 0.6 * x + 0.4 * y  # related pairs: values well inside (0, 1)
    cfg = msssim_config(shape)
    ours = ms_ssim(x, y, cfg)
    ref = monai_regression.compute_ms_ssim(
        x,
        y,
        spatial_dims=len(shape),
        data_range=cfg.data_range,
        kernel_size=cfg.kernel_size,
        kernel_sigma=cfg.sigma,
        weights=cfg.weights,
    )[:, 0]
    assert float(ours.min()) > 0.2 and float(ours.max()) < 0.99
    torch.testing.assert_close(ours.float(), ref.float(), rtol=1e-4, atol=1e-5)


def test_identical_volumes_score_one_and_noise_lowers_it() -> None:
    x = _smooth(2, (16, 16, 16), 2)
    assert torch.allclose(ms_ssim(x, x), torch.ones(2, dtype=torch.float64))
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert float(ms_ssim(x, noisy).max()) < 0.95


@pytest.mark.parametrize(
    ("shape", "scales", "kernel"),
    [
        ((16, 16, 16), 2, 7),
        ((32, 64, 64), 3, 7),
        ((64, 64, 64), 4, 7),
        ((128, 128, 128), 5, 7),
        ((256,) * 3, 5, 11),
    ],
)
def test_config_is_valid_for_the_shape(shape, scales, kernel) -> None:
    cfg = msssim_config(shape)
    assert (cfg.scales, cfg.kernel_size) == (scales, kernel)
    assert min(shape) // 2 ** (cfg.scales - 1) >= cfg.kernel_size
    assert sum(cfg.weights) == pytest.approx(1.0)
    w = np.asarray(WANG_WEIGHTS[:scales])
    assert np.allclose(cfg.weights, w / w.sum())


def test_too_small_volume_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        msssim_config((4, 32, 32))


def test_pairs_are_distinct_and_seeded() -> None:
    pairs = sample_pairs(10, 20, seed=3)
    assert len({tuple(p) for p in pairs}) == 20 and (pairs[:, 0] < pairs[:, 1]).all()
    assert (pairs == sample_pairs(10, 20, seed=3)).all()
    assert len(sample_pairs(4, 100)) == 6  # all pairs when fewer than asked


def test_diversity_lower_for_diverse_set() -> None:
    base = _smooth(1, (16, 16, 16), 4)
    collapsed = (
        base + 0.05 * torch.randn(8, 1, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    ).clamp(-1, 1)
    diverse = _smooth(8, (16, 16, 16), 5)
    assert ms_ssim_pairs(diverse, 28)[0].mean() < ms_ssim_pairs(collapsed, 28)[0].mean()


def test_psnr_nearest_real_matches_monai() -> None:
    real = _smooth(6, (8, 12, 12), 6)
    fake = (
        real[[4, 1, 1]] + 0.1 * torch.randn(3, 1, 8, 12, 12, generator=torch.Generator().manual_seed(1))
    ).clamp(-1, 1)
    ours, idx = nearest_real_psnr(fake, real)
    # Independent pairing: brute-force loop over real volumes.
    brute = [int(np.argmin([float(((f - r) ** 2).mean()) for r in real])) for f in fake]
    assert idx.tolist() == brute == [4, 1, 1]
    metric = monai_regression.PSNRMetric(max_val=2.0, reduction="none")
    ref = metric(fake, real[brute]).flatten().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_psnr_of_a_copy_is_capped() -> None:
    real = _smooth(3, (8, 8, 8), 7)
    values, _ = nearest_real_psnr(real[:2], real)
    assert (values == 100.0).all()
