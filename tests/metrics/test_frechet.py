"""Fréchet distance against closed forms and an independent scipy.linalg.sqrtm computation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from medgan3d.metrics.frechet import (
    bootstrap_fid,
    feature_stats,
    fid_from_features,
    frechet_distance,
    frechet_distance_to_features,
)


def _random_cov(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_one_dimensional_closed_form() -> None:
    # N(0, 1) vs N(m, s²): (m)² + (1 - s)².
    assert frechet_distance([0.0], [[1.0]], [3.0], [[4.0]]) == pytest.approx(9.0 + 1.0)


def test_commuting_covariances_closed_form() -> None:
    rng = np.random.default_rng(0)
    d = 12
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_general_case_matches_scipy_sqrtm() -> None:
    rng = np.random.default_rng(1)
    d = 20
    s1, s2 = _random_cov(rng, d), _random_cov(rng, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("n_fake", [8, 60])  # below and above the feature dimension
@pytest.mark.parametrize("lowrank_max", [4096, 0])  # nuclear-norm path and square-root path
def test_fast_paths_equal_full_formula(n_fake: int, lowrank_max: int) -> None:
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(50, 30)), rng.normal(0.3, 1.5, size=(n_fake, 30))
    r, f = feature_stats(real, lowrank_max), feature_stats(fake)
    assert (r.factor is None) == (lowrank_max == 0)
    # rel 1e-7: with n < dim the full formula takes square roots of round-off eigenvalues (~1e-15 each).
    expected = frechet_distance(r.mu, r.sigma, f.mu, f.sigma)
    assert frechet_distance_to_features(r, fake) == pytest.approx(expected, rel=1e-7)


def test_same_set_scores_zero_and_shift_scores_its_square() -> None:
    x = np.random.default_rng(3).normal(size=(40, 16))
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.zeros(16)
    shift[0] = 2.0
    assert fid_from_features(x, x + shift) == pytest.approx(4.0, rel=1e-8)


def test_bootstrap_interval_is_ordered_and_near_the_score() -> None:
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(64, 8)), rng.normal(0.5, 1.0, size=(64, 8))
    lo, hi = bootstrap_fid(feature_stats(real), fake, rounds=200, seed=0)
    score = fid_from_features(real, fake)
    assert lo < hi
    assert lo < score * 1.5 and hi > score * 0.5


def test_bad_features_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="NaN"):
        feature_stats(np.full((3, 2), np.nan))


def test_grouped_bootstrap_keeps_groups_and_checks_the_size() -> None:
    rng = np.random.default_rng(5)
    real = feature_stats(rng.normal(size=(40, 6)))
    per_volume = rng.normal(0.4, 1.0, size=(12, 1, 6)) + 0.05 * rng.normal(size=(12, 8, 6))
    fake = per_volume.reshape(96, 6)  # 12 volumes × 8 near-identical slices
    grouped = bootstrap_fid(real, fake, rounds=100, seed=0, group_size=8)
    single = bootstrap_fid(real, fake, rounds=100, seed=0)
    assert grouped[1] - grouped[0] > 1.5 * (single[1] - single[0])  # independent slices look too precise
    with pytest.raises(ValueError, match="groups of 7"):
        bootstrap_fid(real, fake, rounds=2, group_size=7)
