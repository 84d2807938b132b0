"""Kernel two-sample scores on feature matrices: KID and Gaussian-kernel MMD.

- KID (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³,
  averaged over random subsets of equal size drawn from both sets; the spread over subsets is reported.
- MMD (Sun et al., IEEE JBHI 2022, HA-GAN tables): unbiased MMD² with the Gaussian kernel k(x, y) = exp(-||x - y||² / (2 σ²)),
  σ = median pairwise Euclidean distance of the pooled real and generated features (the median heuristic,
  Gretton et al. 2012). The bandwidth is returned so it can be recorded with the score.
"""

from __future__ import annotations

import numpy as np


def _unbiased_mmd2(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased MMD² from kernel blocks (diagonals of the within-set blocks excluded)."""
    m, n = kxx.shape[0], kyy.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"MMD needs at least 2 samples per set, got {m} and {n}")
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def _pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.clip(d, 0.0, None)


def median_bandwidth(x: np.ndarray, y: np.ndarray) -> float:
    """Median pairwise Euclidean distance over the pooled samples (off-diagonal pairs)."""
    z = np.concatenate([x, y]).astype(np.float64)
    d = np.sqrt(_pairwise_sq(z, z))
    off = d[~np.eye(len(z), dtype=bool)]
    med = float(np.median(off))
    return med if med > 0 else 1.0


def mmd_rbf(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> tuple[float, float]:
    """Unbiased Gaussian-kernel MMD² between ``x`` ``[m, d]`` and ``y`` ``[n, d]``; returns (mmd², σ)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    sigma = median_bandwidth(x, y) if bandwidth is None else float(bandwidth)
    gamma = 1.0 / (2.0 * sigma * sigma)
    k = [np.exp(-gamma * _pairwise_sq(a, b)) for a, b in ((x, x), (y, y), (x, y))]
    return _unbiased_mmd2(*k), sigma


def polynomial_mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased MMD² with k(x, y) = (xᵀy / d + coef0)^degree (the KID kernel)."""
    d = x.shape[1]
    k = [(a @ b.T / d + coef0) ** degree for a, b in ((x, x), (y, y), (x, y))]
    return _unbiased_mmd2(*k)


def kid(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float, int]:
    """KID: mean and standard deviation of polynomial MMD² over ``subsets`` random subsets.

    The subset size is ``min(subset_size, len(real), len(fake))``; returns (mean, std, size used).
    """
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    vals = [
        polynomial_mmd2(
            x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(vals)), float(np.std(vals)), size
