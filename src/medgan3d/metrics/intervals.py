"""Resampling intervals of the scores (docs/evaluation.md, "Intervals").

FID and IS are biased upward at small sample counts (FID's bias falls like 1/n: Chong & Forsyth, "Effectively
Unbiased FID and Inception Score and where to find them", CVPR 2020). Resampling *with* replacement makes it
worse: a bootstrap resample holds only ~63 % distinct volumes, so every replicate is more biased than the
estimate and the percentile interval can sit wholly above it (``fid_avg 3.341 [3.356, 3.727]``). Here they
get a **half-sampling interval**: each round scores b = ⌊n/2⌋ of the n generated volumes drawn *without*
replacement (subsampling, Politis & Romano, Ann. Statist. 22:2031, 1994; the delete-d jackknife with d = n/2,
Shao & Wu, Ann. Statist. 17:1176, 1989, which stays consistent for non-smooth statistics). Every subsample
carries the same bias, so the deviations of the rounds from their own mean measure only the spread; scaled by
√(b/(n−b)) (the finite-population factor of sampling without replacement; 1 for b = n/2) and added to the
estimate they give an interval for the score *at n volumes*: how much it moves with the generated sample
drawn. It does not remove the small-sample bias — compare FIDs only at equal sample counts.

Means of per-volume or per-pair values (PSNR, MS-SSIM) are unbiased; they keep the percentile bootstrap of
the mean (Efron, "Bootstrap methods: another look at the jackknife", Ann. Statist. 7:1, 1979).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LEVEL = 0.95
HALF_SAMPLING = "half-sampling without replacement (Politis & Romano 1994; Shao & Wu 1989)"
BOOTSTRAP_MEAN = "percentile bootstrap of the mean (Efron 1979)"


def half_size(n: int) -> int:
    """The subsample size b = ⌊n/2⌋ (at least 2, what a covariance needs)."""
    if n < 4:
        raise ValueError(f"half-sampling needs at least 4 samples, got {n}")
    return n // 2


def subsample_draws(n: int, rounds: int, seed: int = 0, size: int | None = None) -> np.ndarray:
    """``[rounds, size]`` indices, each row ``size`` (default ⌊n/2⌋) distinct indices of ``range(n)``, seeded."""
    size = half_size(n) if size is None else size
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n)[:size] for _ in range(rounds)]).reshape(rounds, size)


def subsampling_interval(
    estimate: float, replicates: np.ndarray, n: int, size: int, level: float = LEVEL
) -> list[float]:
    """``estimate`` + √(b/(n−b)) · the (α/2, 1−α/2) quantiles of the replicates' deviations from their mean.

    ``replicates``: the statistic on subsamples of ``size`` = b of the ``n`` samples (:func:`subsample_draws`).
    """
    if not 0 < size < n:
        raise ValueError(f"subsample size must be in (0, {n}), got {size}")
    reps = np.asarray(replicates, dtype=np.float64)
    dev = (reps - reps.mean()) * np.sqrt(size / (n - size))
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(dev, [a, 1.0 - a])
    return [float(estimate + lo), float(estimate + hi)]


def subsampled(
    statistic: Callable[[np.ndarray], float], n: int, rounds: int, seed: int = 0
) -> tuple[np.ndarray, int]:
    """``statistic(indices)`` on ``rounds`` half-samples of ``range(n)``; returns the replicates and b."""
    draws = subsample_draws(n, rounds, seed)
    return np.array([statistic(idx) for idx in draws]), draws.shape[1]


def bootstrap_mean_interval(
    values: np.ndarray, rounds: int, seed: int = 0, level: float = LEVEL
) -> list[float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(rounds)]
    a = (1.0 - level) / 2.0
    return [float(v) for v in np.quantile(means, [a, 1.0 - a])]


def describe(method: str, rounds: int, n: int, size: int | None = None, level: float = LEVEL) -> dict:
    """What ``details[key]["interval"]`` records about an interval."""
    out = {"method": method, "level": level, "rounds": rounds, "samples": n}
    return out | ({"subsample_size": size} if size is not None else {})
