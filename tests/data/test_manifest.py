"""The typed manifest: what prepare writes reads back field for field; damaged manifests fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medgan3d.data import DatasetError, Manifest, make_heart_phantoms
from medgan3d.data.manifest import MANIFEST_NAME


@pytest.fixture(scope="module")
def heart(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("m")
    make_heart_phantoms(3, root / "h", shape=(8, 16, 16), inplane=32, val_fraction=0.34)
    return root / "h"


def test_fields_equal_the_json(heart: Path) -> None:
    raw = json.loads((heart / MANIFEST_NAME).read_text(encoding="utf-8"))
    m = Manifest.load(heart)
    assert m.count == raw["count"] == 3 and list(m.shape) == raw["shape"]
    assert m.preset.to_dict() == raw["preset"] and m.intensity.to_dict() == raw["intensity"]
    assert list(m.spacing) == raw["spacing"] and np.array_equal(m.affine_array, np.asarray(raw["affine"]))
    assert {k: list(v) for k, v in m.splits.items()} == raw["splits"]
    assert [(it.index, it.source, it.split, list(it.valid_slices)) for it in m.items] == [
        (it["index"], it["source"], it["split"], it["valid_slices"]) for it in raw["items"]
    ]
    assert m.content_hash == raw["content_hash"] and m.raw == raw
    assert sorted(m.indices("train") + m.indices("val")) == m.indices("all") == [0, 1, 2]
    assert m.open_array().shape == (3, 1, 8, 16, 16)


def _damaged_root(tmp_path: Path) -> Path:
    return tmp_path / "d"


def _damaged(heart: Path, tmp_path: Path, change) -> Path:
    out = _damaged_root(tmp_path)
    out.mkdir()
    (out / "volumes.npy").symlink_to(heart / "volumes.npy")
    raw = json.loads((heart / MANIFEST_NAME).read_text(encoding="utf-8"))
    change(raw)
    (out / MANIFEST_NAME).write_text(json.dumps(raw), encoding="utf-8")
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("spacing"), r"dataset\.json: missing field 'spacing'"),
        (lambda r: r.update(count="3"), r"field 'count' has the wrong type \(str\)"),
        (lambda r: r.update(shape=[1, 8, 16]), r"field 'shape' must be a list of 4 numbers"),
        (lambda r: r["items"][1].pop("source"), r"items\[1\]: missing field 'source'"),
        (lambda r: r["intensity"].update(kind="gamma"), r"intensity kind must be 'window' or 'percentile'"),
        (lambda r: r.update(format="nnunet"), r"not a medgan3d dataset manifest"),
        (
            lambda r: r.update(count=4),
            r"volumes\.npy: shape \[3, 1, 8, 16, 16\] != manifest \[4, 1, 8, 16, 16\]",
        ),
    ],
)
def test_damaged_manifests_fail_in_one_line_naming_the_field(heart, tmp_path, change, message) -> None:
    with pytest.raises(DatasetError, match=message) as info:
        Manifest.load(_damaged(heart, tmp_path, change))
    text = str(info.value)
    assert "\n" not in text and str(_damaged_root(tmp_path)) in text


def test_a_run_folder_copy_loads_without_the_array(heart: Path, tmp_path: Path) -> None:
    (tmp_path / MANIFEST_NAME).write_bytes((heart / MANIFEST_NAME).read_bytes())
    assert Manifest.load(tmp_path, check_array=False).count == 3
    with pytest.raises(DatasetError, match="cannot open the volume array"):
        Manifest.load(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{", encoding="utf-8")
    with pytest.raises(DatasetError, match="unreadable manifest"):
        Manifest.load(tmp_path, check_array=False)
