"""Inception Score (Salimans et al. 2016): the formula, the shipped classifier, and ``is`` in the evaluation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from medgan3d.metrics import evaluate_volumes
from medgan3d.metrics.inception_score import (
    Classifier,
    VolumeClassifier,
    get_classifier,
    inception_score,
    load_classifier,
    random_classifier,
)
from medgan3d.modeling import WeightsError, from_pretrained


def _numpy_is(p: np.ndarray, splits: int) -> tuple[float, float]:
    """The reference code's loop, written independently with numpy (rows with zeros avoided by the callers)."""
    scores = []
    n = len(p)
    for k in range(splits):
        part = p[k * n // splits : (k + 1) * n // splits]
        py = part.mean(axis=0)
        scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def _dirichlet(n: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.full(k, 0.3), size=n) + 1e-12


@pytest.mark.parametrize("splits", [1, 3, 10])
def test_formula_matches_an_independent_numpy_computation(splits: int) -> None:
    p = _dirichlet(50, 7, seed=splits)
    p /= p.sum(1, keepdims=True)
    mean, std = inception_score(torch.from_numpy(p), splits)
    ref_mean, ref_std = _numpy_is(p, splits)
    assert mean == pytest.approx(ref_mean, rel=1e-10) and std == pytest.approx(ref_std, rel=1e-8, abs=1e-12)
    assert 1.0 <= mean <= 7.0


def test_known_answers() -> None:
    k = 5
    assert inception_score(torch.full((40, k), 1.0 / k)) == pytest.approx((1.0, 0.0))  # uniform: IS 1
    onehot = torch.eye(k).repeat(8, 1)  # one-hot, equally spread over the K classes: IS K
    assert inception_score(onehot) == pytest.approx((float(k), 0.0))
    assert inception_score(onehot, splits=8) == pytest.approx((float(k), 0.0))  # each split holds all K
    same = torch.eye(k)[[2] * 30]  # one-hot, all the same class: p(y|x) = p(y), IS 1
    assert inception_score(same) == pytest.approx((1.0, 0.0))
    # splits that differ: the first half spread over 2 classes (IS 2), the second over 4 (IS 4)
    mixed = torch.cat([torch.eye(4)[[0, 1] * 4], torch.eye(4)[[0, 1, 2, 3] * 2]])
    assert inception_score(mixed, splits=2) == pytest.approx((3.0, 1.0))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(torch.ones(4, 3))
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.full((4, 2), 0.5), splits=5)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        inception_score(torch.full((4,), 0.25))


def test_classifier_is_generic_in_shape_and_seeded() -> None:
    net = random_classifier(num_classes=3, seed=4)
    state = torch.random.get_rng_state()
    again = random_classifier(num_classes=3, seed=4)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone
    for shape in [(2, 1, 16, 16, 16), (1, 1, 9, 20, 13)]:
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            logits = net(x)
            assert logits.shape == (shape[0], 3) and torch.equal(logits, again(x))
    other = random_classifier(num_classes=3, seed=5)
    assert not torch.equal(net.head.weight, other.head.weight)


def test_classifier_save_load_round_trip(tmp_path) -> None:
    net = VolumeClassifier(num_classes=4, widths=(8, 16), seed=1)
    net.save_pretrained(tmp_path / "clf")
    loaded = from_pretrained(tmp_path / "clf")
    assert isinstance(loaded, VolumeClassifier) and loaded.config == net.config
    x = torch.rand(3, 1, 12, 12, 12) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    clf = load_classifier(tmp_path / "clf")
    sha = clf.provenance["weights_sha256"]
    assert clf.label == f"{(tmp_path / 'clf').resolve()} sha256 {sha}" and len(sha) == 64
    probs = clf.probabilities(x, batch_size=2)
    assert probs.shape == (3, 4) and torch.allclose(probs.sum(1), torch.ones(3, dtype=torch.float64))
    (tmp_path / "clf" / "model.safetensors").write_bytes(b"broken")
    with pytest.raises(WeightsError):
        load_classifier(tmp_path / "clf")


def test_default_classifier_is_labelled_random() -> None:
    clf = get_classifier(None, seed=3)
    assert clf.label == "random, seed 3" and "smoke test" in clf.provenance["note"]


def test_is_in_evaluate_volumes_with_its_classifier_label(brain_root, heldout, tmp_path) -> None:
    fast = {"extractor_2d": "random-2d", "extractor_3d": "random-3d", "cache": tmp_path, "bootstrap": 20}
    r = evaluate_volumes(heldout, brain_root, metrics=("is",), **fast)
    assert 1.0 <= r["is"] <= 10.0 and next(iter(r)) == "is"
    assert r["details"]["is"]["classifier"] == "random, seed 0" and "smoke test" in r["details"]["is"]["note"]
    assert r["provenance"]["classifier"]["weights"] == "random, seed 0"
    lo, hi = r["ci95"]["is"]
    assert lo <= r["is"] <= hi
    assert "fid_avg" not in r and "is" not in evaluate_volumes(heldout, brain_root, metrics=("psnr",), **fast)
    # a saved classifier whose logits do not depend on the input: p(y|x) = p(y) for every volume, IS 1
    net = VolumeClassifier(num_classes=3, widths=(8,), seed=0)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    net.save_pretrained(tmp_path / "clf")
    clf = load_classifier(tmp_path / "clf")
    r2 = evaluate_volumes(heldout, brain_root, metrics=("is",), classifier=str(tmp_path / "clf"), **fast)
    assert r2["details"]["is"]["classifier"] == clf.label and "note" not in r2["details"]["is"]
    assert r2["provenance"]["settings"]["classifier"] == str(tmp_path / "clf")
    assert r2["is"] == pytest.approx(1.0) and r2["details"]["is"]["num_classes"] == 3
    built = evaluate_volumes(heldout, brain_root, metrics=("is",), classifier=clf, **fast)
    assert built["is"] == r2["is"] and isinstance(clf, Classifier)


def test_cli_classifier_option_adds_is_and_names_the_classifier(brain_root, tmp_path) -> None:
    from typer.testing import CliRunner

    from medgan3d.cli.main import app
    from medgan3d.config import load_preset

    gdir, cdir = tmp_path / "G", tmp_path / "clf"
    load_preset("tiny").model.build_generator().save_pretrained(gdir)
    VolumeClassifier(num_classes=3, widths=(8, 16), seed=2).save_pretrained(cdir)
    common = ["evaluate", str(gdir), "--data", str(brain_root), "-n", "4", "--cache", str(tmp_path)]
    res = CliRunner().invoke(
        app, [*common, "-o", str(tmp_path / "a"), "-m", "psnr", "--classifier", str(cdir)]
    )
    assert res.exit_code == 0, res.output
    label = load_classifier(cdir).label
    assert f"IS classifier: {label}" in res.output and re.search(r"\bis: \d", res.output)
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text(encoding="utf-8"))
    assert "psnr" in metrics and metrics["details"]["is"]["classifier"] == label
    html = (tmp_path / "a" / "report.html").read_text(encoding="utf-8")
    assert re.search(r"<td>is</td><td>[0-9.]+</td>", html) and "depends entirely on the classifier" in html
    res = CliRunner().invoke(app, [*common, "-o", str(tmp_path / "b"), "-m", "is"])
    assert res.exit_code == 0, res.output
    assert "IS classifier: random, seed 0 — randomly initialised" in res.output
