"""KID and Gaussian MMD against explicit double-loop computations of the unbiased estimator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from medgan3d.metrics.mmd import kid, median_bandwidth, mmd_rbf, polynomial_mmd2


def _loop_mmd2(x: np.ndarray, y: np.ndarray, k) -> float:
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(n), 2)) / (n * (n - 1))
    sxy = sum(k(a, b) for a in x for b in y) / (m * n)
    return sxx + syy - 2 * sxy


def test_rbf_mmd_matches_loop_and_median_bandwidth() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 5)), rng.normal(0.5, 1.0, size=(7, 5))
    value, sigma = mmd_rbf(x, y)
    z = np.concatenate([x, y])
    dists = [np.linalg.norm(z[i] - z[j]) for i, j in itertools.combinations(range(len(z)), 2)]
    assert sigma == pytest.approx(np.median(dists))
    expected = _loop_mmd2(x, y, lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2)))
    assert value == pytest.approx(expected, rel=1e-10)
    assert median_bandwidth(x, y) == pytest.approx(sigma)


def test_polynomial_mmd_matches_loop() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 4)), rng.normal(size=(6, 4)) * 2
    expected = _loop_mmd2(x, y, lambda a, b: (a @ b / 4 + 1) ** 3)
    assert polynomial_mmd2(x, y) == pytest.approx(expected, rel=1e-10)


def test_kid_separates_shifted_sets() -> None:
    rng = np.random.default_rng(2)
    real = rng.normal(size=(60, 16))
    same, shifted = rng.normal(size=(60, 16)), rng.normal(0.7, 1.0, size=(60, 16))
    k_same, _, size = kid(real, same, subsets=20, subset_size=40)
    k_shift, std, _ = kid(real, shifted, subsets=20, subset_size=40)
    assert size == 40 and std > 0
    assert abs(k_same) < 0.02 < k_shift
