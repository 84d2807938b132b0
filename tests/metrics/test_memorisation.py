"""The memorisation check (copy detector): nearest-training distances of generated vs held-out volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from medgan3d.data import load_manifest, make_brain_phantoms
from medgan3d.metrics import evaluate_volumes, evaluate_volumes_with_artifacts
from medgan3d.metrics.memorisation import mann_whitney_z, nearest_distances
from medgan3d.metrics.report import write_report


@pytest.fixture(scope="module")
def split_root(tmp_path_factory) -> Path:
    """24 brain phantoms at 16³, a third of them held out (val)."""
    root = tmp_path_factory.mktemp("memo") / "brain"
    make_brain_phantoms(24, root, seed=0, shape=(16, 16, 16), val_fraction=0.34)
    return root


def _train_val(root: Path) -> tuple[np.ndarray, list[int], list[int]]:
    manifest = load_manifest(root)
    return np.load(root / "volumes.npy"), manifest["splits"]["train"], manifest["splits"]["val"]


def test_mann_whitney_z_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, 30), rng.normal(0.4, 1.0, 11)
    u, z = mann_whitney_z(a, b)
    ref = stats.mannwhitneyu(a, b, alternative="less", method="asymptotic", use_continuity=False)
    assert u == pytest.approx(ref.statistic)
    assert z == pytest.approx(stats.norm.ppf(ref.pvalue), rel=1e-9)


def test_nearest_distances_against_brute_force() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(37, 1, 4, 5, 6)).astype(np.float32)
    x = rng.normal(size=(9, 1, 4, 5, 6)).astype(np.float32)
    x[3] = train[20]
    d, idx = nearest_distances(torch.from_numpy(x), train, batch=8)
    brute = np.sqrt(((x[:, None].astype(np.float64) - train[None]) ** 2).reshape(9, 37, -1).mean(-1))
    assert np.array_equal(idx, brute.argmin(1))
    assert d == pytest.approx(brute.min(1), abs=1e-9)
    assert d[3] == 0.0 and idx[3] == 20


def test_copies_of_training_volumes_are_flagged(split_root: Path) -> None:
    vols, train, val = _train_val(split_root)
    assert len(val) >= 6
    picked = train[:12]
    copies = torch.from_numpy(vols[picked].astype(np.float32))
    mem = evaluate_volumes(copies, split_root, metrics=("memorisation",))["memorisation"]
    assert mem["verdict"] == "copies" and "exact copies of training volumes" in mem["verdict_text"]
    assert [c["train_index"] for c in mem["exact_copies"]] == picked
    assert mem["z_u"] < -3 and mem["closer_than_any_heldout"] == 1.0
    # near-copies (training volumes + 1 % noise) are no exact copies but still flagged as copying
    noisy = copies + 0.01 * torch.randn(copies.shape, generator=torch.Generator().manual_seed(0))
    mem = evaluate_volumes(noisy, split_root, metrics=("memorisation",))["memorisation"]
    assert mem["verdict"] == "copying" and mem["exact_copies"] == [] and mem["z_u"] < -3


def test_an_independent_set_is_not_flagged(split_root: Path, tmp_path: Path) -> None:
    make_brain_phantoms(16, tmp_path / "other", seed=7, shape=(16, 16, 16))
    fresh = torch.from_numpy(np.load(tmp_path / "other" / "volumes.npy").astype(np.float32))
    result, art = evaluate_volumes_with_artifacts(
        fresh, split_root, metrics=("memorisation", "psnr"), bootstrap=0
    )
    mem = result["memorisation"]
    assert mem["verdict"] == "none" and mem["exact_copies"] == [] and mem["z_u"] > -3
    assert mem["heldout_volumes"] == len(_train_val(split_root)[2])
    page = write_report(result, art, tmp_path / "r", viewer_volumes=0).read_text(encoding="utf-8")
    assert "Memorisation check" in page and "No sign of copying" in page
    assert "higher is better" not in page.split("<td>psnr</td>")[1].split("</tr>")[0]


def test_without_held_out_volumes_the_verdict_says_so(tmp_path: Path) -> None:
    make_brain_phantoms(6, tmp_path / "d", seed=0, shape=(16, 16, 16), val_fraction=0.0)
    fake = torch.from_numpy(np.load(tmp_path / "d" / "volumes.npy").astype(np.float32)) * 0.5
    mem = evaluate_volumes(fake, tmp_path / "d", metrics=("memorisation",))["memorisation"]
    assert mem["verdict"] == "unknown" and "too few held-out" in mem["verdict_text"]
