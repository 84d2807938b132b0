"""The scores' intervals: half-sampling contains the estimate where the bootstrap excludes it, covers
the expected score at n, and draws without replacement; the too-few-samples warnings."""

from __future__ import annotations

import numpy as np
import pytest

from medgan3d.metrics import evaluate_volumes
from medgan3d.metrics.evaluate import MIN_SAMPLES, sample_warnings
from medgan3d.metrics.frechet import (
    bootstrap_fid,
    feature_stats,
    frechet_distance_to_features,
    subsample_fid_scores,
)
from medgan3d.metrics.intervals import subsample_draws, subsampling_interval

DIM = 32
REAL = feature_stats(np.random.default_rng(100).normal(size=(200, DIM)))


def _fake(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0.15, 1.1, size=(n, DIM))


def _interval(fake: np.ndarray, seed: int, rounds: int = 100) -> tuple[float, list[float]]:
    estimate = frechet_distance_to_features(REAL, fake)
    scores, size = subsample_fid_scores(REAL, fake, rounds, seed)
    return estimate, subsampling_interval(estimate, scores, len(fake), size)


@pytest.mark.parametrize("seed", range(6))
def test_half_sampling_contains_the_estimate_the_bootstrap_excludes(seed: int) -> None:
    fake = _fake(np.random.default_rng(seed), 16)  # fewer samples than feature dims, as FID on 8-64 volumes
    estimate, (lo, hi) = _interval(fake, seed)
    assert lo < estimate < hi
    boot_lo, _ = bootstrap_fid(REAL, fake, rounds=100, seed=seed)
    assert boot_lo > estimate  # duplicates inflate FID: the with-replacement interval lies above its estimate


def test_half_sampling_covers_the_expected_score_at_n_and_is_not_too_wide() -> None:
    rng = np.random.default_rng(7)
    n = 24
    truth = np.array([frechet_distance_to_features(REAL, _fake(rng, n)) for _ in range(300)])
    covered, widths = 0, []
    for i in range(40):
        _, (lo, hi) = _interval(_fake(rng, n), seed=i, rounds=60)
        covered += lo <= truth.mean() <= hi
        widths.append(hi - lo)
    assert covered >= 34  # nominal 38 of 40; measured 39
    true_width = np.subtract(*np.quantile(truth, [0.975, 0.025]))
    assert 0.7 * true_width < np.mean(widths) < 2.0 * true_width  # measured 1.19x: slightly conservative


def test_subsample_draws_are_seeded_halves_without_replacement() -> None:
    draws = subsample_draws(13, rounds=20, seed=4)
    assert draws.shape == (20, 6) and all(len(set(row)) == 6 for row in draws)
    assert np.array_equal(draws, subsample_draws(13, rounds=20, seed=4))
    with pytest.raises(ValueError, match="at least 4"):
        subsample_draws(3, rounds=2)


@pytest.mark.parametrize("seed", range(3))
def test_every_interval_of_an_evaluation_contains_its_estimate(brain_root, heldout, tmp_path, seed) -> None:
    r = evaluate_volumes(
        heldout[:16],
        brain_root,
        metrics=("fid", "fid_3d", "ms_ssim", "psnr", "is"),
        extractor_2d="random-2d",
        extractor_3d="random-3d",
        cache=tmp_path,
        bootstrap=40,
        seed=seed,
    )
    assert {"fid_ax", "fid_sag", "fid_cor", "fid_avg", "fid_3d", "is", "ms_ssim", "psnr"} <= set(r["ci95"])
    for key, (lo, hi) in r["ci95"].items():
        assert lo <= r[key] <= hi, (key, r[key], lo, hi)
    assert r["details"]["fid_avg"]["interval"]["method"].startswith("half-sampling")
    assert r["details"]["psnr"]["interval"]["method"].startswith("percentile bootstrap of the mean")


def test_too_few_samples_are_warned_in_the_result(brain_root, heldout, tmp_path) -> None:
    r = evaluate_volumes(
        heldout[:8],
        brain_root,
        metrics=("fid", "kid", "psnr"),
        extractor_2d="random-2d",
        extractor_3d="random-3d",
        cache=tmp_path,
        bootstrap=0,
    )
    fid, kid, psnr = r["warnings"]
    assert fid.startswith(
        "fid_ax, fid_sag, fid_cor, fid_avg: 8 generated and 24 real volumes, fewer than the 50"
    )
    assert kid.startswith("kid: 8 generated volumes, fewer than the 20") and "psnr: 8 generated" in psnr
    enough = {"provenance": {"num_fake": 500, "num_real": 500}, "fid_avg": 1.0, "kid": 0.1, "ms_ssim": 0.5}
    assert sample_warnings(enough) == []
    assert MIN_SAMPLES["fid"] == 50
