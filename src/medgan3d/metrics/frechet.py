"""Fréchet distance between Gaussians fitted to feature matrices (math only, no networks).

FID (Heusel et al. 2017) = ||mu_r - mu_g||² + tr(S_r) + tr(S_g) - 2 tr((S_r S_g)^{1/2}).
Liu et al. (arXiv 2208.03934 §4.1.2) apply it to Inception features of centre slices (FID-ax/sag/cor/avg); Sun et al., IEEE JBHI 2022 (HA-GAN)
to 3D MedicalNet features. Everything here is float64 numpy.

The trace term needs no d × d matrix square root. With A = (X_r - mu_r) / sqrt(n_r - 1) and
B = (X_g - mu_g) / sqrt(n_g - 1) (so S_r = AᵀA, S_g = BᵀB), the non-zero eigenvalues of S_r S_g are the
squared singular values of the small n_r × n_g matrix A Bᵀ, hence tr((S_r S_g)^{1/2}) = ||A Bᵀ||_* (nuclear
norm). This is exact, and cheap when the sample counts are small next to the feature dimension (2048 for
Inception), which makes repeated scoring against cached real statistics (resampling intervals, snapshots)
fast. For real sets larger than ``LOWRANK_MAX`` the symmetric form Σ sqrt(eig(R S_g R)), R = S_r^{1/2}, is
used instead (the eigenvalues of R S_g R equal those of S_r S_g).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOWRANK_MAX = 4096


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance (ddof=1) of ``n`` feature vectors, with what the trace term needs.

    ``factor`` is A = centred features / sqrt(n - 1) (kept when n <= ``LOWRANK_MAX``); otherwise
    ``sigma_sqrt`` is the PSD square root of ``sigma``.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    factor: np.ndarray | None = None
    sigma_sqrt: np.ndarray | None = None


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues clipped to 0)."""
    sym = (matrix + matrix.T) / 2.0
    vals, vecs = np.linalg.eigh(sym)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def _as_features(feats: np.ndarray) -> np.ndarray:
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be [n, dim], got shape {list(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or Inf")
    return x


def feature_stats(feats: np.ndarray, lowrank_max: int = LOWRANK_MAX) -> GaussianStats:
    """Fit a Gaussian to ``feats`` ``[n, dim]`` (covariance with ddof=1, as in the reference FID code)."""
    x = _as_features(feats)
    mu = x.mean(axis=0)
    factor = (x - mu) / np.sqrt(x.shape[0] - 1)
    sigma = factor.T @ factor
    if x.shape[0] <= lowrank_max:
        return GaussianStats(mu, sigma, x.shape[0], factor=factor)
    return GaussianStats(mu, sigma, x.shape[0], sigma_sqrt=psd_sqrt(sigma))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (Dowson & Landau 1982)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    root = psd_sqrt(sigma1)
    cross = np.linalg.eigvalsh((root @ sigma2 @ root + (root @ sigma2 @ root).T) / 2.0)
    trace_sqrt = np.sqrt(np.clip(cross, 0.0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt, 0.0))


def frechet_distance_to_features(real: GaussianStats, feats: np.ndarray) -> float:
    """Fréchet distance from real statistics to the Gaussian fitted to ``feats`` (module docstring)."""
    x = _as_features(feats)
    if x.shape[1] != real.mu.shape[0]:
        raise ValueError(f"feature dim {x.shape[1]} != real statistics dim {real.mu.shape[0]}")
    mu = x.mean(axis=0)
    b = (x - mu) / np.sqrt(x.shape[0] - 1)
    if real.factor is not None:
        trace_sqrt = np.linalg.svd(real.factor @ b.T, compute_uv=False).sum()
    else:
        y = b @ real.sigma_sqrt  # the non-zero eigenvalues of R S_g R are those of y yᵀ
        small = y @ y.T if y.shape[0] <= y.shape[1] else y.T @ y
        trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0.0, None)).sum()
    diff = real.mu - mu
    value = diff @ diff + np.trace(real.sigma) + float((b * b).sum()) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def fid_from_features(real_feats: np.ndarray, fake_feats: np.ndarray) -> float:
    """FID between two feature matrices ``[n, dim]``."""
    return frechet_distance_to_features(feature_stats(real_feats), fake_feats)


def subsample_fid_scores(
    real: GaussianStats, fake_feats: np.ndarray, rounds: int, seed: int = 0, group_size: int = 1
) -> tuple[np.ndarray, int]:
    """FIDs of ``rounds`` half-samples of the generated set drawn without replacement, and the subsample size
    (in groups): the replicates of :func:`~medgan3d.metrics.intervals.subsampling_interval`, which explains
    why not the bootstrap. ``group_size`` > 1: consecutive rows are one volume's slices (``[N * S, dim]``) and
    whole volumes are drawn, since slices of one volume are not independent samples. Equal ``seed`` and group
    count draw the same volumes in every round, so several views can be combined round by round (FID-avg)."""
    from medgan3d.metrics.intervals import subsample_draws

    x, groups = _grouped(fake_feats, group_size)
    draws = subsample_draws(groups, rounds, seed)
    return _fids_of_draws(real, x, draws, group_size), draws.shape[1]


def bootstrap_fid(
    real: GaussianStats,
    fake_feats: np.ndarray,
    rounds: int,
    seed: int = 0,
    level: float = 0.95,
    group_size: int = 1,
) -> tuple[float, float]:
    """Percentile bootstrap interval of FID over resamplings (with replacement) of the generated set.

    Kept for comparison only: duplicates inflate FID, so this interval can lie wholly above the estimate
    (tests show it); evaluation uses :func:`subsample_fid_scores`. The real statistics are held fixed;
    ``group_size`` as there.
    """
    scores = bootstrap_fid_scores(real, fake_feats, rounds, seed, group_size)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(scores, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_fid_scores(
    real: GaussianStats, fake_feats: np.ndarray, rounds: int, seed: int = 0, group_size: int = 1
) -> np.ndarray:
    """The ``rounds`` bootstrap FIDs behind :func:`bootstrap_fid` (groups drawn with replacement)."""
    x, groups = _grouped(fake_feats, group_size)
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.integers(0, groups, groups) for _ in range(rounds)]).reshape(rounds, groups)
    return _fids_of_draws(real, x, draws, group_size)


def _grouped(fake_feats: np.ndarray, group_size: int) -> tuple[np.ndarray, int]:
    x = _as_features(fake_feats)
    if group_size < 1 or len(x) % group_size:
        raise ValueError(f"{len(x)} feature rows do not split into groups of {group_size}")
    return x, len(x) // group_size


def _fids_of_draws(real: GaussianStats, x: np.ndarray, draws: np.ndarray, group_size: int) -> np.ndarray:
    """FID of the rows of every drawn group set (``draws``: ``[rounds, k]`` group indices)."""
    offsets = np.arange(group_size)
    rows = [(picked[:, None] * group_size + offsets).ravel() for picked in draws]
    return np.asarray([frechet_distance_to_features(real, x[r]) for r in rows])
