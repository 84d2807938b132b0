"""Multi-scale SSIM (Wang, Simoncelli & Bovik 2003) for 2D and 3D volumes, and the diversity score.

Liu et al. (arXiv 2208.03934 Table 8, following Kwon et al., MICCAI 2019) report MS-SSIM between pairs of *generated* volumes as a
diversity score: lower means more diverse. The formula is the canonical one:

    MS-SSIM = l_M^{w_M} · Π_{j=1..M} cs_j^{w_j}

with Gaussian windows (σ = 1.5, 11 taps), "valid" filtering, C1 = (0.01 L)², C2 = (0.03 L)², a 2× average
pool between scales, and weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); the luminance term enters at
the coarsest scale only (there it is the mean SSIM map). Negative cs values are clipped to 0 so that the
fractional powers are defined (as MONAI and pytorch-msssim do).

Five scales with an 11-tap window need every side ≥ 11·16 = 176 voxels; paper volumes are 32–64 voxels
per side. :func:`msssim_config` therefore picks, for a volume shape, the largest number of scales M ≤ 5
whose coarsest level still holds a window of at least ``min_kernel`` (7) taps; the window is the largest
odd size ≤ 11 that fits, σ is scaled with it (1.5 · k / 11, keeping the same truncation), and the first M
weights are renormalised to sum to 1. The chosen setting is recorded with every score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

WANG_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@dataclass(frozen=True)
class MSSSIMConfig:
    """The parameters of one MS-SSIM evaluation (recorded in metrics.json)."""

    scales: int
    kernel_size: int
    sigma: float
    weights: tuple[float, ...]
    data_range: float = 2.0
    k1: float = 0.01
    k2: float = 0.03

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def msssim_config(
    shape: Sequence[int],
    data_range: float = 2.0,
    max_kernel: int = 11,
    min_kernel: int = 7,
    max_scales: int = 5,
) -> MSSSIMConfig:
    """Scales and window valid for a volume of spatial ``shape`` (module docstring); raises if none fits."""
    side = min(int(s) for s in shape)
    for scales in range(max_scales, 0, -1):
        coarsest = side // 2 ** (scales - 1)
        kernel = min(max_kernel, coarsest if coarsest % 2 else coarsest - 1)
        if kernel >= min_kernel:
            w = np.asarray(WANG_WEIGHTS[:scales], dtype=np.float64)
            weights = tuple(float(v) for v in w / w.sum())
            return MSSSIMConfig(scales, kernel, 1.5 * kernel / 11, weights, data_range)
    raise ValueError(f"volume shape {list(shape)} is too small for MS-SSIM (need every side >= {min_kernel})")


def _gaussian_1d(size: int, sigma: float, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype)


def _blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filtering of ``[N, C, *spatial]`` along every spatial axis."""
    nd = x.ndim - 2
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    c = x.shape[1]
    for axis in range(nd):
        shape = [c, 1] + [1] * nd
        shape[2 + axis] = kernel.numel()
        x = conv(x, kernel.view(shape), groups=c)
    return x


def ssim_components(x: Tensor, y: Tensor, cfg: MSSSIMConfig) -> tuple[Tensor, Tensor]:
    """Per-item mean SSIM and mean contrast-structure (cs) maps at one scale: two ``[N]`` tensors."""
    kernel = _gaussian_1d(cfg.kernel_size, cfg.sigma, x.dtype).to(x.device)
    c1, c2 = (cfg.k1 * cfg.data_range) ** 2, (cfg.k2 * cfg.data_range) ** 2
    mx, my = _blur(x, kernel), _blur(y, kernel)
    sxx = _blur(x * x, kernel) - mx * mx
    syy = _blur(y * y, kernel) - my * my
    sxy = _blur(x * y, kernel) - mx * my
    cs = (2.0 * sxy + c2) / (sxx + syy + c2)
    lum = (2.0 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim(x: Tensor, y: Tensor, cfg: MSSSIMConfig | None = None) -> Tensor:
    """MS-SSIM per item of two batches ``[N, C, *spatial]`` (2D or 3D); returns ``[N]`` (float64)."""
    if x.shape != y.shape:
        raise ValueError(f"MS-SSIM needs equal shapes, got {list(x.shape)} and {list(y.shape)}")
    cfg = cfg or msssim_config(x.shape[2:])
    x, y = x.double(), y.double()
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[x.ndim - 3]
    weights = torch.tensor(cfg.weights, dtype=torch.float64, device=x.device)
    factors = []
    for scale in range(cfg.scales):
        ssim, cs = ssim_components(x, y, cfg)
        factors.append(ssim if scale == cfg.scales - 1 else cs)
        if scale < cfg.scales - 1:
            x, y = pool(x, 2), pool(y, 2)
    stacked = torch.stack(factors).clamp_min(0.0)
    return torch.prod(stacked ** weights[:, None], dim=0)


def sample_pairs(n: int, num_pairs: int, seed: int = 0) -> np.ndarray:
    """Up to ``num_pairs`` distinct unordered pairs (i < j) of ``range(n)``, seeded; all pairs if fewer."""
    if n < 2:
        raise ValueError(f"need at least 2 volumes for pairs, got {n}")
    i, j = np.triu_indices(n, k=1)
    pairs = np.stack([i, j], axis=1)
    if num_pairs < len(pairs):
        rng = np.random.default_rng(seed)
        pairs = pairs[np.sort(rng.choice(len(pairs), num_pairs, replace=False))]
    return pairs


def ms_ssim_pairs(
    volumes: Tensor, num_pairs: int = 100, seed: int = 0, cfg: MSSSIMConfig | None = None, batch: int = 32
) -> tuple[np.ndarray, MSSSIMConfig]:
    """MS-SSIM of random pairs within one set ``[N, C, *spatial]`` (the diversity score of Liu et al., arXiv 2208.03934 Table 8)."""
    cfg = cfg or msssim_config(volumes.shape[2:])
    pairs = sample_pairs(len(volumes), num_pairs, seed)
    values = []
    for start in range(0, len(pairs), batch):
        p = torch.from_numpy(pairs[start : start + batch])
        values.append(ms_ssim(volumes[p[:, 0]], volumes[p[:, 1]], cfg))
    return torch.cat(values).cpu().numpy(), cfg
