"""`prepare`: the bad-input corpus, strict mode, atomic and deterministic output, SRC forms, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from medgan3d.cli.prepare import prepare as prepare_cmd
from medgan3d.data import PrepareError, get_preset, load_manifest, open_volumes, prepare_dataset
from medgan3d.data import prepare as prepare_mod
from tests.data.scans import save_nifti, smooth_volume, write_dicom_series

SMALL = get_preset("coca", shape=(8, 16, 16))


def _no_leftovers(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_corpus_keeps_every_valid_volume_and_names_every_bad_file(corpus, tmp_path):
    root, valid, bad = corpus
    report = prepare_dataset(root, tmp_path / "out", SMALL, workers=1)
    manifest = load_manifest(tmp_path / "out")
    kept = [it["source"] for it in manifest["items"]]
    assert {k.split(":")[0] for k in kept} == set(valid)
    assert len(kept) == sum(valid.values()) == report["count"] == manifest["count"]
    reasons = {s["source"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == set(bad)
    for source, fragment in bad.items():
        assert fragment in reasons[source], (source, reasons[source])
    assert report["ignored"] == ["README.txt"]
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["skipped"] == report["skipped"]
    _no_leftovers(tmp_path)


def test_workers_give_the_same_bytes_and_rerun_is_identical(corpus, tmp_path):
    root, _, _ = corpus
    prepare_dataset(root, tmp_path / "a", SMALL, workers=1)
    prepare_dataset(root, tmp_path / "b", SMALL, workers=2)
    prepare_dataset(root, tmp_path / "a", SMALL, workers=1)  # re-run replaces in place
    for name in ("volumes.npy", "dataset.json", "report.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    _no_leftovers(tmp_path)


def test_strict_stops_naming_the_file_and_leaves_nothing(corpus, tmp_path):
    root, _, _ = corpus
    (root / "dicom_ok" / "broken.dcm").unlink()
    with pytest.raises(PrepareError, match=r"constant\.nii\.gz: constant image"):
        prepare_dataset(root, tmp_path / "out", SMALL, strict=True)
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)


def test_interrupted_run_leaves_previous_dataset_untouched(tmp_path, monkeypatch, rng):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        save_nifti(src / f"s{i}.nii.gz", smooth_volume(rng))
    prepare_dataset(src, tmp_path / "out", SMALL)
    before = (tmp_path / "out" / "dataset.json").read_bytes()
    real = prepare_mod.process_source
    calls = []

    def dying(args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(args)

    monkeypatch.setattr(prepare_mod, "process_source", dying)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(src, tmp_path / "out", get_preset("coca", shape=(8, 8, 8)))
    assert (tmp_path / "out" / "dataset.json").read_bytes() == before
    _no_leftovers(tmp_path)


def test_refuses_to_replace_a_folder_that_is_not_a_dataset(tmp_path, rng):
    save_nifti(tmp_path / "s.nii.gz", smooth_volume(rng))
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("x")
    with pytest.raises(PrepareError, match="not a prepared dataset"):
        prepare_dataset(tmp_path / "s.nii.gz", tmp_path / "precious", SMALL)
    assert (tmp_path / "precious" / "thesis.tex").exists()
    _no_leftovers(tmp_path)


def test_glob_and_path_list_with_unreadable_entry(tmp_path, rng):
    for i in range(3):
        save_nifti(tmp_path / f"s{i}.nii.gz", smooth_volume(rng))
    prepare_dataset(str(tmp_path / "s[01].nii.gz"), tmp_path / "g", SMALL)
    assert [it["source"] for it in load_manifest(tmp_path / "g")["items"]] == [
        str(tmp_path / "s0.nii.gz"),
        str(tmp_path / "s1.nii.gz"),
    ]
    (tmp_path / "list.txt").write_text("# scans\ns2.nii.gz\nmissing.nii.gz\n\ns0.nii.gz\n")
    report = prepare_dataset(tmp_path / "list.txt", tmp_path / "l", SMALL)
    assert report["count"] == 2
    assert report["skipped"] == [
        {"source": str(tmp_path / "missing.nii.gz"), "reason": "cannot read: no such file"}
    ]


def test_output_inside_src_is_not_read_back(tmp_path, rng):
    save_nifti(tmp_path / "s.nii.gz", smooth_volume(rng))
    prepare_dataset(tmp_path, tmp_path / "out", SMALL)
    report = prepare_dataset(tmp_path, tmp_path / "out", SMALL)
    assert report["count"] == 1 and report["sources"] == 1


def test_nothing_usable_is_an_error(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.nii").write_bytes(b"")
    with pytest.raises(PrepareError, match=r"no usable volume.*a\.nii: empty file"):
        prepare_dataset(tmp_path / "src", tmp_path / "out", SMALL)
    assert not (tmp_path / "out").exists()


def test_manifest_schema_and_split(corpus, tmp_path):
    root, _, _ = corpus
    prepare_dataset(root, tmp_path / "out", SMALL, val_fraction=0.25, dtype="float32")
    m = load_manifest(tmp_path / "out")
    assert m["shape"] == [1, 8, 16, 16] and m["dtype"] == "float32" and m["orientation"] == "RAS"
    assert m["preset"] == SMALL.to_dict()
    assert m["intensity"] == {"kind": "window", "lo": -250.0, "hi": 650.0, "unit": "HU"}
    assert m["content_hash"].startswith("sha256:")
    train, val = m["splits"]["train"], m["splits"]["val"]
    assert sorted(train + val) == list(range(m["count"])) and len(val) == round(0.25 * m["count"])
    for key in (
        "source",
        "original_shape",
        "original_spacing",
        "original_affine",
        "spacing",
        "affine",
        "split",
    ):
        assert all(key in it for it in m["items"]), key
    arr = open_volumes(tmp_path / "out")
    assert arr.shape == (m["count"], 1, 8, 16, 16) and float(arr.min()) >= -1 and float(arr.max()) <= 1


def test_cli_prepare_folder_and_strict(corpus, tmp_path):
    root, _, _ = corpus
    app = typer.Typer()
    app.command("prepare")(prepare_cmd)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    res = runner.invoke(app, ["prepare", str(root), "-o", str(tmp_path / "o"), "--shape", "8x16x16"])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "constant image" in res.output
    assert load_manifest(tmp_path / "o")["shape"] == [1, 8, 16, 16]
    res = runner.invoke(app, ["prepare", str(root), "-o", str(tmp_path / "s"), "--strict", "--shape", "8"])
    assert res.exit_code == 1 and "broken.dcm" in res.output
    assert not (tmp_path / "s").exists()
    res = runner.invoke(app, ["prepare", str(root), "-o", str(tmp_path / "x"), "--shape", "8x16"])
    assert res.exit_code != 0


def test_float16_cache_is_close_to_float32(tmp_path, rng):
    save_nifti(tmp_path / "s.nii.gz", smooth_volume(rng, (12, 16, 16), -250, 650))
    prepare_dataset(tmp_path / "s.nii.gz", tmp_path / "h", get_preset("coca", shape=(12, 16, 16)))
    prepare_dataset(
        tmp_path / "s.nii.gz", tmp_path / "f", get_preset("coca", shape=(12, 16, 16)), dtype="float32"
    )
    h, f = open_volumes(tmp_path / "h"), open_volumes(tmp_path / "f")
    assert h.dtype == np.float16 and np.abs(h.astype(np.float32) - f).max() < 1e-3


def test_refuses_to_replace_a_folder_with_a_foreign_dataset_json(tmp_path, rng):
    """MSD / nnU-Net raw folders have their own dataset.json next to imagesTr: never delete them."""
    save_nifti(tmp_path / "s.nii.gz", smooth_volume(rng))
    task = tmp_path / "Task02_Heart"
    (task / "imagesTr").mkdir(parents=True)
    save_nifti(task / "imagesTr" / "la_003.nii.gz", smooth_volume(rng))
    (task / "dataset.json").write_text(json.dumps({"name": "LeftAtrium", "labels": {"0": "background"}}))
    with pytest.raises(PrepareError, match="not a prepared dataset"):
        prepare_dataset(tmp_path / "s.nii.gz", task, SMALL)
    assert (task / "imagesTr" / "la_003.nii.gz").exists()
    assert json.loads((task / "dataset.json").read_text())["name"] == "LeftAtrium"
    _no_leftovers(tmp_path)


def test_overlapping_glob_and_repeated_list_entries_read_each_scan_once(tmp_path, rng):
    """'scans/**' matches the folders and the files inside them; a list may repeat a line."""
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    save_nifti(scans / "a.nii.gz", smooth_volume(rng))
    save_nifti(scans / "sub" / "b.nii.gz", smooth_volume(rng))
    report = prepare_dataset(str(scans / "**"), tmp_path / "g", SMALL)
    kept = [it["source"] for it in load_manifest(tmp_path / "g")["items"]]
    assert report["count"] == 2 and sorted(kept) == [str(scans / "a.nii.gz"), str(scans / "sub" / "b.nii.gz")]
    (tmp_path / "list.txt").write_text("scans/a.nii.gz\nscans/a.nii.gz\nscans/sub\n")
    assert prepare_dataset(tmp_path / "list.txt", tmp_path / "l", SMALL)["count"] == 2


def test_dicom_files_named_by_uid_are_a_series_not_ignored(tmp_path, rng):
    """PACS exports name files by SOP instance UID: dots, no .dcm suffix; the preamble says DICOM."""
    src = tmp_path / "src"
    vol = rng.integers(-1000, 1000, (5, 8, 8)).astype(np.int16)
    files = write_dicom_series(src / "patient1", vol, "1.2.3.4.77")
    for i, f in enumerate(files):
        f.rename(f.with_name(f"1.2.840.113619.2.55.3.{i + 1}"))
    (src / "patient1" / "notes.txt").write_text("not an image\n")
    report = prepare_dataset(src, tmp_path / "out", SMALL)
    assert [it["source"] for it in load_manifest(tmp_path / "out")["items"]] == ["patient1#1.2.3.4.77"]
    assert report["skipped"] == [] and report["ignored"] == ["patient1/notes.txt"]


@pytest.mark.parametrize("dtype", ["int8", "uint8", "foo"])
def test_cache_dtype_other_than_float16_or_float32_is_refused(tmp_path, rng, dtype):
    """An integer cache would round every [-1, 1] value to -1, 0 or 1 without a word."""
    save_nifti(tmp_path / "s.nii.gz", smooth_volume(rng))
    with pytest.raises(ValueError, match="float16"):
        prepare_dataset(tmp_path / "s.nii.gz", tmp_path / "out", SMALL, dtype=dtype)
    assert not (tmp_path / "out").exists()
    _no_leftovers(tmp_path)
