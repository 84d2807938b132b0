"""`prepare` against a hostile source: link loops, dangling links, FIFOs, duplicate links, a worker killed
mid-task, headers claiming absurd sizes, and the umask of the written dataset."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from medgan3d.cli.prepare import prepare as prepare_cmd
from medgan3d.data import PrepareError, get_preset, load_manifest, prepare_dataset
from medgan3d.data import prepare as prepare_mod
from tests.data.scans import save_nifti, sigkill_if_named_sigkill, smooth_volume, write_dicom_series

SMALL = get_preset("coca", shape=(8, 16, 16))


def _reasons(report: dict) -> dict[str, str]:
    return {s["source"]: s["reason"] for s in report["skipped"]}


def _cli(args: list[str]):
    app = typer.Typer()
    app.command("prepare")(prepare_cmd)
    app.command("noop")(lambda: None)
    return CliRunner().invoke(app, ["prepare", *args])


@pytest.fixture
def hostile(tmp_path: Path, rng) -> Path:
    """Two valid scans next to every kind of link and special file that used to abort or hang `prepare`."""
    src = tmp_path / "src"
    src.mkdir()
    save_nifti(src / "good1.nii.gz", smooth_volume(rng))
    save_nifti(src / "good2.nii.gz", smooth_volume(rng))
    os.symlink("x.nii.gz", src / "x.nii.gz")  # points at itself
    os.symlink("b.nii", src / "a.nii")  # a -> b -> a
    os.symlink("a.nii", src / "b.nii")
    os.symlink("loop", src / "loop")  # extension-less: would be taken for a DICOM file
    os.symlink("missing.nii.gz", src / "dangling.nii.gz")
    os.mkfifo(src / "pipe.nii.gz")
    os.mkfifo(src / "pipe")
    os.mkfifo(src / "notes.txt")  # sniffed for a DICM preamble: open() on a FIFO blocks forever
    os.symlink("good1.nii.gz", src / "alias.nii.gz")  # the same scan under a second name
    return src


@pytest.mark.timeout(120)
def test_loops_dangling_links_and_fifos_are_skipped_and_valid_scans_kept(hostile, tmp_path):
    report = prepare_dataset(hostile, tmp_path / "out", SMALL)
    assert [it["source"] for it in load_manifest(tmp_path / "out")["items"]] == [
        "good1.nii.gz",
        "good2.nii.gz",
    ]
    reasons = _reasons(report)
    for name in ("x.nii.gz", "a.nii", "b.nii", "loop"):
        assert reasons.pop(name).startswith("symbolic link loop"), name
    assert (
        reasons.pop("dangling.nii.gz")
        == "dangling symbolic link (its target 'missing.nii.gz' does not exist)"
    )
    for name in ("pipe.nii.gz", "pipe", "notes.txt"):
        assert reasons.pop(name).startswith("named pipe (FIFO)"), name
    assert reasons == {}
    assert report["ignored"] == ["alias.nii.gz (same file as good1.nii.gz)"]


@pytest.mark.timeout(120)
def test_cli_lists_each_special_file_on_one_line_without_traceback(hostile, tmp_path):
    res = _cli([str(hostile), "-o", str(tmp_path / "o"), "--shape", "8x16x16"])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "2 volumes" in res.output
    assert "  skipped x.nii.gz: symbolic link loop" in res.output
    assert "  skipped pipe: named pipe (FIFO)" in res.output


@pytest.mark.timeout(120)
def test_fifo_in_a_dicom_folder_does_not_cost_the_series(tmp_path, rng):
    """GDCM scanning a folder with a FIFO in it silently dropped every other slice of the series."""
    src = tmp_path / "src"
    write_dicom_series(src / "ct", rng.integers(-1000, 1000, (6, 16, 16)).astype(np.int16), "1.2.3.4.9")
    os.mkfifo(src / "ct" / "zz.dcm")
    os.symlink("slice000.dcm", src / "ct" / "alias.dcm")
    report = prepare_dataset(src, tmp_path / "out", SMALL)
    (item,) = load_manifest(tmp_path / "out")["items"]
    assert item["source"] == "ct#1.2.3.4.9" and item["original_shape"][0] == 6
    assert _reasons(report) == {"ct/zz.dcm": "named pipe (FIFO), not a regular file: not opened"}


@pytest.mark.timeout(120)
def test_glob_list_and_single_path_forms_skip_special_files(hostile, tmp_path):
    report = prepare_dataset(str(hostile / "*.nii.gz"), tmp_path / "g", SMALL)
    assert report["count"] == 2
    assert set(_reasons(report)) == {str(hostile / n) for n in ("x.nii.gz", "dangling.nii.gz", "pipe.nii.gz")}
    (tmp_path / "list.txt").write_text("src/good2.nii.gz\nsrc/a.nii\nsrc/pipe\n")
    report = prepare_dataset(tmp_path / "list.txt", tmp_path / "l", SMALL)
    assert report["count"] == 1
    assert _reasons(report)[str(tmp_path / "src" / "a.nii")].startswith("symbolic link loop")
    with pytest.raises(PrepareError, match=r"x\.nii\.gz: symbolic link loop"):
        prepare_dataset(hostile / "x.nii.gz", tmp_path / "s", SMALL)
    with pytest.raises(PrepareError, match=r"pipe: named pipe \(FIFO\)"):
        prepare_dataset(hostile / "pipe", tmp_path / "s", SMALL)


def test_links_and_hard_links_to_one_scan_are_read_once(tmp_path, rng):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    save_nifti(src / "z.nii.gz", smooth_volume(rng))
    os.symlink("../z.nii.gz", src / "sub" / "a.nii.gz")
    os.link(src / "z.nii.gz", src / "hard.nii.gz")
    report = prepare_dataset(src, tmp_path / "out", SMALL)
    assert report["count"] == 1
    assert [it["source"] for it in load_manifest(tmp_path / "out")["items"]] == ["hard.nii.gz"]
    assert report["ignored"] == [
        "sub/a.nii.gz (same file as hard.nii.gz)",
        "z.nii.gz (same file as hard.nii.gz)",
    ]
    assert prepare_dataset(str(src / "**"), tmp_path / "g", SMALL)["count"] == 1


@pytest.mark.timeout(300)
def test_a_sigkilled_worker_is_a_skipped_item_and_the_run_finishes(tmp_path, rng, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("s0", "s1", "s2_sigkill", "s3", "s4"):
        save_nifti(src / f"{name}.nii.gz", smooth_volume(rng))
    ref = tmp_path / "ref"
    shutil.copytree(src, ref)
    (ref / "s2_sigkill.nii.gz").unlink()
    prepare_dataset(ref, tmp_path / "expected", SMALL, workers=1)
    monkeypatch.setattr(prepare_mod, "process_source", sigkill_if_named_sigkill)
    report = prepare_dataset(src, tmp_path / "out", SMALL, workers=2)
    assert report["skipped"] == [
        {
            "source": "s2_sigkill.nii.gz",
            "reason": "worker process died (signal 9, SIGKILL) while reading this file",
        }
    ]
    for name in ("volumes.npy", "dataset.json"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "expected" / name).read_bytes(), name


# --------------------------------------------------------------------------------------------- claimed size
def _nifti_claiming(path: Path, shape: tuple[int, ...], dtype=np.float32) -> Path:
    """A .nii.gz of a few hundred bytes whose header claims ``shape`` and whose data section is absent."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_sform(np.eye(4), code=1)
    hdr["vox_offset"] = 352
    path.write_bytes(gzip.compress(hdr.binaryblock + b"\0" * 4 + b"\1" * 64))
    return path


def _mha_claiming(path: Path, size: str) -> Path:
    header = (
        f"ObjectType = Image\nNDims = 3\nDimSize = {size}\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + b"\0" * 64)
    return path


def test_header_claiming_more_voxels_than_the_limit_is_refused_before_reading(tmp_path, rng):
    src = tmp_path / "src"
    src.mkdir()
    save_nifti(src / "good.nii.gz", smooth_volume(rng))
    _nifti_claiming(src / "bomb.nii.gz", (64, 64, 64))
    _mha_claiming(src / "bomb.mha", "100 100 100")
    np.savez_compressed(src / "bomb.npz", images=np.zeros((4, 64, 64, 64), dtype=np.uint8))
    write_dicom_series(src / "ct", rng.integers(-1000, 1000, (6, 64, 64)).astype(np.int16), "1.2.3.4.5")
    report = prepare_dataset(src, tmp_path / "out", SMALL, max_voxels=20_000)
    assert report["count"] == 1
    limit = "over the limit of 20,000 voxels (--max-voxels); not read"
    assert _reasons(report) == {
        "bomb.nii.gz": f"header claims shape [64, 64, 64] = 262,144 voxels, {limit}",
        "bomb.mha": f"header claims shape [100, 100, 100] = 1,000,000 voxels, {limit}",
        "bomb.npz:images": f"header claims shape [4, 64, 64, 64] = 1,048,576 voxels, {limit}",
        "ct#1.2.3.4.5": f"header claims shape [64, 64, 6] = 24,576 voxels, {limit}",
    }
    # Under a large enough limit the same files reach the readers, which fail differently (no data).
    loose = _reasons(prepare_dataset(src, tmp_path / "loose", SMALL, max_voxels=10**7))
    assert "cannot read voxel data" in loose["bomb.nii.gz"] and "bomb.npz:images" not in loose


def test_default_limit_refuses_a_gigavoxel_header(tmp_path, rng):
    """629 MB claimed by a tiny file: refused by the default limit without allocating the data."""
    save_nifti(tmp_path / "good.nii.gz", smooth_volume(rng))
    _nifti_claiming(tmp_path / "bomb.nii.gz", (1024, 1024, 600), np.uint8)
    report = prepare_dataset(str(tmp_path / "*.nii.gz"), tmp_path / "out", SMALL)
    (reason,) = _reasons(report).values()
    assert reason.startswith("header claims shape [1024, 1024, 600] = 629,145,600 voxels, over the limit")
    assert "536,870,912" in reason


def test_cli_max_voxels(tmp_path, rng):
    save_nifti(tmp_path / "good.nii.gz", smooth_volume(rng, (12, 16, 16)))
    save_nifti(tmp_path / "big.nii.gz", smooth_volume(rng, (20, 20, 20)))
    res = _cli(
        [str(tmp_path / "*.nii.gz"), "-o", str(tmp_path / "o"), "--shape", "8x16x16", "--max-voxels", "4000"]
    )
    assert res.exit_code == 0, res.output
    assert f"skipped {tmp_path / 'big.nii.gz'}: header claims shape [20, 20, 20] = 8,000 voxels" in res.output
    assert load_manifest(tmp_path / "o")["count"] == 1


# --------------------------------------------------------------------------------------------- umask
@pytest.mark.parametrize(("umask", "dir_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_prepared_dataset_follows_the_umask(tmp_path, rng, umask, dir_mode, file_mode):
    save_nifti(tmp_path / "s.nii.gz", smooth_volume(rng))
    old = os.umask(umask)
    try:
        prepare_dataset(tmp_path / "s.nii.gz", tmp_path / "out", SMALL)
        prepare_dataset(tmp_path / "s.nii.gz", tmp_path / "out", SMALL)  # the replace path too
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == dir_mode
    for name in ("volumes.npy", "dataset.json", "report.json"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == file_mode, name
