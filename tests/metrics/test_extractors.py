"""Feature extractors: seeded random nets, weight files (safetensors / weights-only .pth) and provenance."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch

from medgan3d.metrics.extractors import (
    ExtractorError,
    InceptionV3FID,
    MedicalNetResNet,
    RandomConvNet,
    convert_to_safetensors,
    get_extractor,
)


def test_random_extractor_is_seeded() -> None:
    x = torch.rand(3, 1, 12, 16, 16) * 2 - 1
    a, b, c = RandomConvNet(3, 0), RandomConvNet(3, 0), RandomConvNet(3, 1)
    assert np.array_equal(a.features(x), b.features(x))
    assert not np.allclose(a.features(x), c.features(x))
    assert a.provenance["weights"] == "random, seed 0" and a.features(x).shape == (3, a.feature_dim)


def test_inception_has_fid_layout() -> None:
    model = InceptionV3FID()
    assert sum(p.numel() for p in model.parameters()) == 21_785_568  # InceptionV3 minus fc and aux head
    assert model.features(torch.zeros(1, 1, 20, 24)).shape == (1, 2048)


def _medicalnet_file(tmp_path, shortcut: str):
    """A MedicalNet-style checkpoint: {'state_dict': ...} with DataParallel prefixes and a seg head."""
    ref = get_extractor("medicalnet-r10", weights="random", seed=3)
    if shortcut == "A":
        ref = MedicalNetResNet(10, "A")
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    state["module.conv_seg.0.weight"] = torch.zeros(2, 2, 1, 1, 1)
    path = tmp_path / f"resnet_10_{shortcut}.pth"
    torch.save({"state_dict": state, "epoch": 7}, path)
    return ref, path


@pytest.mark.parametrize("shortcut", ["B", "A"])
def test_medicalnet_pth_loads_with_hash(tmp_path, shortcut: str) -> None:
    ref, path = _medicalnet_file(tmp_path, shortcut)
    model = get_extractor("medicalnet-r10", weights=path)
    assert model.provenance["shortcut"] == shortcut
    assert model.provenance["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    x = torch.rand(2, 1, 16, 16, 16)
    np.testing.assert_allclose(model.features(x), ref.features(x), rtol=1e-5, atol=1e-6)
    st = convert_to_safetensors(path, tmp_path / "cache" / "weights" / "medicalnet_resnet10.safetensors")
    cached = get_extractor("medicalnet-r10", root=tmp_path / "cache")  # found in the cache by name
    assert cached.provenance["weights"] == str(st.resolve())
    np.testing.assert_allclose(cached.features(x), ref.features(x), rtol=1e-5, atol=1e-6)


class _Evil:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_pickles_with_objects_are_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"x": _Evil()}))
    with pytest.raises(ExtractorError, match=r"evil\.pth"):
        get_extractor("medicalnet-r10", weights=path)


def test_wrong_weights_name_the_file(tmp_path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, path)
    with pytest.raises(ExtractorError, match=r"other\.pth: does not fit"):
        get_extractor("medicalnet-r10", weights=path)


def test_missing_weights_fall_back_or_fail_clearly(tmp_path) -> None:
    model = get_extractor("inception", root=tmp_path)
    assert model.name == "random-2d" and "no inception weights" in model.provenance["note"]
    with pytest.raises(ExtractorError, match="no weights for medicalnet"):
        get_extractor("medicalnet", root=tmp_path, fallback_random=False)
