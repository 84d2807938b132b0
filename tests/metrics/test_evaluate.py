"""The orchestrator on 16³ brain phantoms: self-FID ≈ 0, degraded sets score worse, caching, generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from medgan3d.config import MetricsConfig, load_preset
from medgan3d.data import Manifest
from medgan3d.metrics import SCORE_KEYS, evaluate_generator, evaluate_volumes, scalars
from medgan3d.metrics.inputs import load_real, real_indices

FAST = {"extractor_2d": "random-2d", "extractor_3d": "random-3d", "bootstrap": 0}


def _real(root) -> torch.Tensor:
    return load_real(root, real_indices(Manifest.load(root)))


def _noise(x: torch.Tensor) -> torch.Tensor:
    return (x + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)


def _blur(x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(gaussian_filter(x.numpy(), sigma=(0, 0, 1.2, 1.2, 1.2))).float()


def _shuffle_slices(x: torch.Tensor) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.stack([v[:, torch.randperm(v.shape[1], generator=g)] for v in x])


def test_set_against_itself_scores_zero(brain_root, tmp_path) -> None:
    r = evaluate_volumes(_real(brain_root), brain_root, cache=tmp_path, **FAST)
    for key in ("fid_ax", "fid_sag", "fid_cor", "fid_avg", "fid_3d"):
        assert abs(r[key]) < 1e-6, key
    assert r["mmd"] <= 0.0  # the unbiased estimator is slightly negative for identical sets
    assert r["psnr"] == 100.0  # every volume's nearest real volume is itself (capped)
    assert r["ms_ssim"] == pytest.approx(r["ms_ssim_real"])


@pytest.mark.parametrize(
    "degrade", [_noise, _blur, _shuffle_slices], ids=["noise", "blur", "shuffled-slices"]
)
def test_degraded_set_scores_worse_than_clean_heldout(brain_root, heldout, tmp_path, degrade) -> None:
    settings = MetricsConfig(metrics=("fid", "fid_3d", "kid", "mmd"), cache=tmp_path, **FAST)
    clean = evaluate_volumes(heldout, brain_root, settings)
    bad = evaluate_volumes(degrade(heldout), brain_root, settings)
    assert bad["fid_avg"] > 1.5 * clean["fid_avg"], (bad["fid_avg"], clean["fid_avg"])
    assert bad["fid_3d"] > 1.5 * clean["fid_3d"], (bad["fid_3d"], clean["fid_3d"])
    assert bad["kid"] > clean["kid"] and bad["mmd"] > clean["mmd"]


def test_real_features_are_cached_per_extractor(brain_root, heldout, tmp_path) -> None:
    first = evaluate_volumes(heldout, brain_root, cache=tmp_path, metrics=("fid",), **FAST)
    again = evaluate_volumes(heldout, brain_root, cache=tmp_path, metrics=("fid",), **FAST)
    assert not first["details"]["fid_ax"]["real_cached"] and again["details"]["fid_ax"]["real_cached"]
    assert again["fid_avg"] == first["fid_avg"]
    assert len(list((tmp_path / "real-features").glob("*.npz"))) == 3
    other = evaluate_volumes(heldout, brain_root, cache=tmp_path, metrics=("fid",), extractor_seed=1, **FAST)
    assert not other["details"]["fid_ax"]["real_cached"] and other["fid_avg"] != first["fid_avg"]


def test_generator_evaluation_is_seeded_and_complete(brain_root, tmp_path) -> None:
    torch.manual_seed(0)
    G = load_preset("tiny").model.build_generator()
    state = torch.random.get_rng_state()
    a = evaluate_generator(
        G,
        brain_root,
        num_samples=12,
        cache=tmp_path,
        seed=5,
        extractor_2d="random-2d",
        extractor_3d="random-3d",
    )
    assert torch.equal(state, torch.random.get_rng_state())  # the training loop's RNG is untouched
    b = evaluate_generator(G, brain_root, num_samples=12, cache=tmp_path, seed=5, **FAST)
    assert set(SCORE_KEYS) <= set(a) and a["fid_avg"] == b["fid_avg"]
    assert {"fid_ax", "ms_ssim", "psnr"} <= set(a["ci95"])
    prov = a["provenance"]
    assert prov["num_fake"] == 12 and prov["num_real"] == 24 and prov["resolution"] == [1, 16, 16, 16][1:]
    assert prov["extractors"]["2d"]["weights"] == "random, seed 0"
    assert all(isinstance(v, float) for v in scalars(a).values()) and "provenance" not in scalars(a)


def _count_loads(monkeypatch) -> list[object]:
    """Every ``Manifest.load`` from now on appends its folder to the returned list."""
    load, calls = Manifest.load.__func__, []  # type: ignore[attr-defined]

    def counted(cls, root, *args, **kwargs):
        calls.append(root)
        return load(cls, root, *args, **kwargs)

    monkeypatch.setattr(Manifest, "load", classmethod(counted))
    return calls


def test_the_manifest_is_read_once_per_evaluation(brain_root, heldout, tmp_path, monkeypatch) -> None:
    G = load_preset("tiny").model.build_generator()
    fast = {"cache": tmp_path, "metrics": ("fid", "psnr"), **FAST}
    calls = _count_loads(monkeypatch)
    by_path = evaluate_generator(G, brain_root, num_samples=4, **fast)
    assert calls == [brain_root]  # at the entry point only, not again per step
    manifest = Manifest.load(brain_root)
    calls.clear()
    by_manifest = evaluate_generator(G, manifest, num_samples=4, **fast)
    images = evaluate_volumes(heldout[:4, :, 8], manifest, cache=tmp_path, **FAST | {"metrics": ("fid",)})
    assert calls == []  # a manifest given is used as it is, for volumes and for 2D images (axial slices)
    assert scalars(by_manifest) == scalars(by_path) and "fid_2d" in images
    assert by_manifest["provenance"]["dataset"] == str(brain_root.resolve())


def test_wrong_shape_and_unknown_metric_are_refused(brain_root, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"shape \[1, 8, 16, 16\].*\[1, 16, 16, 16\]"):
        evaluate_volumes(torch.zeros(4, 1, 8, 16, 16), brain_root, cache=tmp_path, **FAST)
    with pytest.raises(ValueError, match="unknown metrics"):
        evaluate_volumes(torch.zeros(4, 1, 16, 16, 16), brain_root, metrics=("fid", "lpips"), **FAST)


def test_all_slices_uses_every_slice(brain_root, heldout, tmp_path) -> None:
    r = evaluate_volumes(heldout[:6], brain_root, cache=tmp_path, metrics=("fid",), all_slices=True, **FAST)
    assert r["details"]["fid_sag"]["fake_images"] == 6 * 16 and r["provenance"]["slices"] == "all"
    assert np.isfinite(r["fid_avg"])


def _half_sampling(estimate: float, replicates: list[float]) -> np.ndarray:
    """The interval written out: estimate + quantiles of the deviations from the replicates' mean (b = n/2)."""
    dev = np.asarray(replicates) - np.mean(replicates)
    return estimate + np.quantile(dev, [0.025, 0.975])


def test_all_slices_interval_draws_whole_volumes(brain_root, heldout, tmp_path) -> None:
    # Slices of one volume are not independent: the interval must come from drawing generated volumes.
    from medgan3d.metrics.extractors import RandomConvNet
    from medgan3d.metrics.frechet import feature_stats, frechet_distance_to_features
    from medgan3d.metrics.slices import plane_slices

    fake = heldout[:12]
    r = evaluate_volumes(
        fake,
        brain_root,
        cache=tmp_path,
        metrics=("fid",),
        all_slices=True,
        extractor_2d="random-2d",
        bootstrap=40,
        seed=3,
    )
    ext = RandomConvNet(2, 0)
    stats = feature_stats(ext.features(plane_slices(_real(brain_root), "ax", True)))
    per_volume = ext.features(plane_slices(fake, "ax", True)).reshape(12, 16, -1)
    rng = np.random.default_rng(3)
    scores = [  # half-samples: 6 of the 12 volumes without replacement, all 16 slices of each
        frechet_distance_to_features(stats, per_volume[rng.permutation(12)[:6]].reshape(6 * 16, -1))
        for _ in range(40)
    ]
    np.testing.assert_allclose(r["ci95"]["fid_ax"], _half_sampling(r["fid_ax"], scores), rtol=1e-6)
    assert r["details"]["fid_ax"]["interval"]["subsample_size"] == 6


def test_fid_avg_interval_resamples_the_same_volumes_in_every_plane(brain_root, heldout, tmp_path) -> None:
    from medgan3d.metrics.extractors import RandomConvNet
    from medgan3d.metrics.frechet import feature_stats, frechet_distance_to_features
    from medgan3d.metrics.slices import PLANES, plane_slices

    fake = heldout[:12]
    r = evaluate_volumes(
        fake, brain_root, cache=tmp_path, metrics=("fid",), extractor_2d="random-2d", bootstrap=40, seed=2
    )
    ext = RandomConvNet(2, 0)
    stats = {p: feature_stats(ext.features(plane_slices(_real(brain_root), p))) for p in PLANES}
    feats = {p: ext.features(plane_slices(fake, p)) for p in PLANES}
    rng = np.random.default_rng(2)
    avg = []
    for _ in range(40):
        idx = rng.permutation(12)[:6]  # one half-sample of generated volumes, scored in all three planes
        avg.append(np.mean([frechet_distance_to_features(stats[p], feats[p][idx]) for p in PLANES]))
    np.testing.assert_allclose(r["ci95"]["fid_avg"], _half_sampling(r["fid_avg"], avg), rtol=1e-6)
