"""Fréchet distance between Gaussians fitted to feature matrices (math only, no networks).

FID (Heusel et al. 2017) = ||mu_r - mu_g||² + tr(S_r) + tr(S_g) - 2 tr((S_r S_g)^{1/2}).
Seed 001 §4.1.2 applies it to Inception features of centre slices (FID-ax/sag/cor/avg); seed 002 (HA-GAN)
to 3D MedicalNet features. Everything here is float64 numpy.

The trace term is computed without a general matrix square root: the eigenvalues of S_r S_g equal those
of the symmetric PSD matrix R S_g R with R = S_r^{1/2}, so tr((S_r S_g)^{1/2}) = Σ sqrt(eig(R S_g R)).
With S_g = Xcᵀ Xc / (n - 1), the non-zero eigenvalues of R S_g R are those of the small n × n matrix
(Xc R)(Xc R)ᵀ / (n - 1); this makes repeated scoring against cached real statistics (bootstrap CIs,
training snapshots) cheap when n is below the feature dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaussianStats:
    """Mean, covariance (ddof=1) and PSD square root of the covariance of ``n`` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    sigma_sqrt: np.ndarray
    n: int


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


def feature_stats(feats: np.ndarray) -> GaussianStats:
    """Fit a Gaussian to ``feats`` ``[n, dim]`` (covariance with ddof=1, as in the reference FID code)."""
    x = _as_features(feats)
    sigma = np.cov(x, rowvar=False)
    sigma = np.atleast_2d(sigma)
    return GaussianStats(x.mean(axis=0), sigma, psd_sqrt(sigma), x.shape[0])


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
    """Fréchet distance from cached real statistics to the Gaussian fitted to ``feats`` (module docstring)."""
    x = _as_features(feats)
    if x.shape[1] != real.mu.shape[0]:
        raise ValueError(f"feature dim {x.shape[1]} != real statistics dim {real.mu.shape[0]}")
    n = x.shape[0]
    mu = x.mean(axis=0)
    xc = x - mu
    trace_fake = float((xc * xc).sum() / (n - 1))
    if n <= x.shape[1]:
        y = xc @ real.sigma_sqrt
        cross = np.linalg.eigvalsh(y @ y.T / (n - 1))
    else:
        sigma = xc.T @ xc / (n - 1)
        m = real.sigma_sqrt @ sigma @ real.sigma_sqrt
        cross = np.linalg.eigvalsh((m + m.T) / 2.0)
    trace_sqrt = np.sqrt(np.clip(cross, 0.0, None)).sum()
    diff = real.mu - mu
    return float(max(diff @ diff + np.trace(real.sigma) + trace_fake - 2.0 * trace_sqrt, 0.0))


def fid_from_features(real_feats: np.ndarray, fake_feats: np.ndarray) -> float:
    """FID between two feature matrices ``[n, dim]``."""
    return frechet_distance_to_features(feature_stats(real_feats), fake_feats)


def bootstrap_fid(
    real: GaussianStats, fake_feats: np.ndarray, rounds: int, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of FID over resamplings (with replacement) of the generated set.

    The real statistics are held fixed: the interval shows how much the score moves with the generated
    sample drawn, which is the uncertainty a reader comparing two models needs.
    """
    x = _as_features(fake_feats)
    rng = np.random.default_rng(seed)
    scores = [frechet_distance_to_features(real, x[rng.integers(0, len(x), len(x))]) for _ in range(rounds)]
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(scores, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
