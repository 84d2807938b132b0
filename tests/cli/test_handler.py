"""The command line's errors: every misuse is one `error:` line with a documented exit code, no traceback,
and nothing created. Each row runs the real entry point (`python -m medgan3d`) in a subprocess; the rows run
concurrently once per module and each test checks one row."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from medgan3d.errors import EXIT_FAILURE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE

ENV = {k: v for k, v in os.environ.items() if k != "MEDGAN3D_DEBUG"} | {
    "MEDGAN3D_ALLOCATOR": "system",
    "OMP_NUM_THREADS": "1",
}
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
TRAIN = ["train", "--data", "{data}", "--kimg", "0.008", "--out", "{new}"]

# id, argv ({new}: a fresh path that must still not exist afterwards), exit code, words of the error line.
# ROWS: the misuses docs/reliability.md lists, each in its own process; MORE_ROWS: variants, run in this process.
ROWS = [
    (
        "train-raw-nifti-folder",
        ["train", "--data", "{raw}", "--kimg", "1", "--out", "{new}"],
        EXIT_FAILURE,
        ["{raw}", "not a prepared dataset (no dataset.json)", "run medgan3d prepare first"],
    ),
    ("train-out-is-a-file", [*TRAIN[:5], "--out", "{file}"], EXIT_USAGE, ["--out", "{file}", "is a file"]),
    ("train-device-cuda-on-cpu", [*TRAIN, "--device", "cuda"], EXIT_USAGE, ["--device cuda", "no CUDA"]),
    ("train-batch-gpu-0", [*TRAIN, "--batch-gpu", "0"], EXIT_USAGE, ["--batch-gpu", ">= 1", "got 0"]),
    ("train-snap-0", [*TRAIN, "--snap", "0"], EXIT_USAGE, ["--snap", ">= 1", "got 0"]),
    ("train-kimg-0", [*TRAIN[:3], "--kimg", "0", "--out", "{new}"], EXIT_USAGE, ["--kimg", "> 0", "got 0"]),
    ("train-lr-negative", [*TRAIN, "--lr", "-1"], EXIT_USAGE, ["--lr", "> 0", "got -1.0"]),
    (
        "train-mbstd-group",
        [*TRAIN, "--batch", "12", "--batch-gpu", "6"],
        EXIT_USAGE,
        ["batch_gpu 6", "minibatch-std groups of 4"],
    ),
    ("train-unknown-option", ["train", "--bogus"], EXIT_USAGE, ["No such option", "--bogus"]),
    (
        "evaluate-run-without-checkpoints",
        ["evaluate", "{empty}", "--data", "{data}", "-n", "2", "-o", "{new}"],
        EXIT_FAILURE,
        ["{empty}", "checkpoint"],
    ),
    (
        "evaluate-fake-missing",
        ["evaluate", "--fake", "{tmp}/missing", "--data", "{data}", "-o", "{new}"],
        EXIT_FAILURE,
        ["{tmp}/missing", "not a folder"],
    ),
    (
        "evaluate-fake-shape-mismatch",
        [
            "evaluate",
            "--fake",
            "{raw8}",
            "--data",
            "{data}",
            "--metrics",
            "mmd",
            "--fake-mode",
            "model",
            "-o",
            "{new}",
        ],
        EXIT_FAILURE,
        ["unusable", "s0.nii.gz", "s1.nii.gz", "shape [8, 8, 8] != dataset [16, 16, 16]"],
    ),
    (
        "evaluate-out-is-a-file",
        ["evaluate", "--fake", "{raw}", "--data", "{data}", "-o", "{file}"],
        EXIT_USAGE,
        ["--out", "is a file"],
    ),
    (
        "generate-out-is-a-file",
        ["generate", "{run}", "-n", "1", "-o", "{file}"],
        EXIT_USAGE,
        ["--out", "is a file"],
    ),
    ("generate-n-0", ["generate", "{run}", "-n", "0", "-o", "{new}"], EXIT_USAGE, ["-n", "1"]),
    (
        "prepare-phantom-preset-typo",
        ["prepare", "brain-phantom", "--preset", "adnii", "-n", "4", "--shape", "16", "-o", "{new}"],
        EXIT_USAGE,
        ["--preset 'adnii'", "unknown preset", "adni"],
    ),
    (
        "prepare-out-is-a-file",
        ["prepare", "brain-phantom", "-n", "4", "--shape", "16", "-o", "{file}"],
        EXIT_USAGE,
        ["--out", "is a file"],
    ),
]
MORE_ROWS = [
    ("train-out-under-a-file", [*TRAIN[:5], "--out", "{file}/runs"], EXIT_USAGE, ["{file} is a file"]),
    ("train-device-unknown", [*TRAIN, "--device", "gpu"], EXIT_USAGE, ["--device 'gpu'", "cpu, cuda"]),
    ("train-batch-0", [*TRAIN, "--batch", "0"], EXIT_USAGE, ["--batch ", ">= 1", "got 0"]),
    ("train-tick-0", [*TRAIN, "--tick", "0"], EXIT_USAGE, ["--tick", "> 0"]),
    ("train-kimg-negative", [*TRAIN[:3], "--kimg", "-2", "--out", "{new}"], EXIT_USAGE, ["--kimg", "-2"]),
    ("train-gamma-negative", [*TRAIN, "--gamma", "-1"], EXIT_USAGE, ["--gamma", ">= 0"]),
    (
        "train-batch-split",
        [*TRAIN, "--batch", "12", "--batch-gpu", "8"],
        EXIT_USAGE,
        ["batch 12", "multiple of batch_gpu 8"],
    ),
    (
        "train-unknown-metric",
        [*TRAIN, "--metrics", "fid,nope"],
        EXIT_USAGE,
        ["--metrics 'fid,nope': unknown metrics ['nope']; choose from fid,fid_3d,"],
    ),
    (
        "evaluate-unknown-metric",
        ["evaluate", "{run}", "--data", "{data}", "--metrics", "fid, nope", "-o", "{new}"],
        EXIT_USAGE,
        ["--metrics 'fid, nope': unknown metrics ['nope']; choose from fid,fid_3d,"],
    ),
    (
        "evaluate-no-metric",
        ["evaluate", "{run}", "--data", "{data}", "--metrics", ",", "-o", "{new}"],
        EXIT_USAGE,
        ["--metrics ',': no metric names"],
    ),
    ("train-resume-without-kimg", ["train", "--resume", "{run}"], EXIT_USAGE, ["--resume needs --kimg"]),
    (
        "evaluate-generator-shape-mismatch",
        ["evaluate", "{run}", "--data", "{data8}", "-n", "2", "--metrics", "mmd", "-o", "{new}"],
        EXIT_FAILURE,
        ["shape [1, 16, 16, 16]", "[1, 8, 8, 8]"],
    ),
    (
        "evaluate-data-not-prepared",
        ["evaluate", "--fake", "{raw}", "--data", "{raw}", "-o", "{new}"],
        EXIT_FAILURE,
        ["not a prepared dataset"],
    ),
    (
        "generate-no-seeds",
        ["generate", "{run}", "--seeds", "5-2", "-o", "{new}"],
        EXIT_USAGE,
        ["--seeds", "no seeds"],
    ),
    ("generate-missing-run", ["generate", "{tmp}/missing", "-o", "{new}"], EXIT_FAILURE, ["{tmp}/missing"]),
    (
        "prepare-folder-preset-typo",
        ["prepare", "{raw}", "--preset", "adnii", "-o", "{new}"],
        EXIT_USAGE,
        ["--preset 'adnii'"],
    ),
    (
        "prepare-bad-shape",
        ["prepare", "brain-phantom", "--shape", "16x4", "-o", "{new}"],
        EXIT_USAGE,
        ["--shape"],
    ),
    (
        "inflate-missing-checkpoint",
        ["inflate", "{tmp}/missing", "--config", "tiny", "-o", "{new}"],
        EXIT_FAILURE,
        ["{tmp}/missing"],
    ),
    ("info-unknown-preset", ["info", "--config", "nope"], EXIT_USAGE, ["unknown preset 'nope'"]),
]
RESUME = ["train", "--resume", "{run}", "--kimg", "0.008", "--batch", "4", "--lr", "0.1", "--data", "{raw}"]


def _medgan3d(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medgan3d", *argv], capture_output=True, encoding="utf-8", env=ENV, timeout=240
    )


def _nifti_folder(folder: Path, shape: tuple[int, int, int]) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        nib.save(nib.Nifti1Image(rng.random(shape, dtype=np.float32), np.eye(4)), folder / f"s{i}.nii.gz")
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny inputs: prepared 16³ and 8³ phantoms, raw NIfTI folders, a file, an empty folder, a trained run."""
    from medgan3d.data import make_brain_phantoms

    tmp = tmp_path_factory.mktemp("cli-errors")
    make_brain_phantoms(4, tmp / "data", 0, (16, 16, 16))
    make_brain_phantoms(4, tmp / "data8", 0, (8, 8, 8))
    (tmp / "file").write_text("not a folder")
    (tmp / "empty").mkdir()
    paths = {
        "tmp": tmp,
        "data": tmp / "data",
        "data8": tmp / "data8",
        "file": tmp / "file",
        "empty": tmp / "empty",
        "raw": _nifti_folder(tmp / "raw", (16, 16, 16)),
        "raw8": _nifti_folder(tmp / "raw8", (8, 8, 8)),
    }
    trained = _medgan3d(
        ["train", "--data", str(paths["data"]), "--kimg", "0.008", "--out", str(tmp / "runs")]
    )
    assert trained.returncode == 0, trained.stderr
    (paths["run"],) = (tmp / "runs").iterdir()
    return {k: str(v) for k, v in paths.items()}


def _fill(argv: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) for a in argv]


def _paths(world: dict[str, str], row_id: str) -> dict[str, str]:
    return world | {"new": str(Path(world["tmp"]) / "new" / row_id)}


@pytest.fixture(scope="module")
def results(world: dict[str, str]) -> dict[str, tuple[int, str, str, dict[str, str]]]:
    """Every subprocess row (and the resume), run concurrently: about as long as the slowest rows."""

    def one(row_id: str, argv: list[str]) -> tuple[int, str, str, dict[str, str]]:
        paths = _paths(world, row_id)
        proc = _medgan3d(_fill(argv, paths))
        return proc.returncode, proc.stdout, proc.stderr, paths

    jobs = [(row[0], row[1]) for row in ROWS] + [("resume", RESUME)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([job[0] for job in jobs], pool.map(lambda job: one(*job), jobs), strict=True))


def _params(rows: list) -> list:
    return [pytest.param(*row, id=row[0], marks=[NO_CUDA] if "cuda" in row[0] else []) for row in rows]


def _check(row_id: str, code: int, words: list[str], result: tuple[int, str, str, dict[str, str]]) -> None:
    returncode, stdout, stderr, paths = result
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert all(w.format(**paths) in errors[0] for w in words), errors[0]
    assert "Traceback" not in stderr + stdout
    assert returncode == code, stderr
    assert not Path(paths["new"]).exists(), f"{row_id} created {paths['new']}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("row_id", "argv", "code", "words"), _params(ROWS))
def test_misuse_through_the_entry_point(results, row_id, argv, code, words) -> None:  # type: ignore[no-untyped-def]
    _check(row_id, code, words, results[row_id])


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("row_id", "argv", "code", "words"), _params(MORE_ROWS))
def test_misuse_variant_in_process(world, capsys, row_id, argv, code, words) -> None:  # type: ignore[no-untyped-def]
    from medgan3d.cli.main import run

    paths = _paths(world, row_id)
    returncode = run(_fill(argv, paths))
    out, err = capsys.readouterr()
    _check(row_id, code, words, (returncode, out, err, paths))


def test_lr_is_named_as_given_not_as_the_lazy_reg_corrected_value(results) -> None:
    assert "-0.8" not in results["train-lr-negative"][2]


@pytest.mark.timeout(300)
def test_resume_warns_about_the_flags_it_ignores(results) -> None:
    returncode, _, stderr, _ = results["resume"]
    assert returncode == 0, stderr
    (warning,) = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert all(flag in warning for flag in ("--batch", "--lr", "--data")), warning
    assert "--kimg," not in warning and "error:" not in stderr


def _bug(*args: object, **kwargs: object) -> None:
    raise AttributeError("'NoneType' object has no attribute 'shape'")


def test_an_unknown_bug_is_one_line_unless_debugging(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from medgan3d.cli.main import run

    monkeypatch.setattr("medgan3d.summary.summarize", _bug)
    monkeypatch.delenv("MEDGAN3D_DEBUG", raising=False)
    assert run(["info", "--config", "tiny"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err == (
        "error: internal error: AttributeError: 'NoneType' object has no attribute 'shape' "
        "(set MEDGAN3D_DEBUG=1 for the traceback)\n"
    )
    monkeypatch.setenv("MEDGAN3D_DEBUG", "1")
    assert run(["info", "--config", "tiny"]) == EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].startswith("error: internal error: AttributeError")


def test_ctrl_c_is_one_line_and_130(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from medgan3d.cli.main import run

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("medgan3d.summary.summarize", interrupted)
    assert run(["info", "--config", "tiny"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "error: interrupted\n"


def test_messages_become_one_line() -> None:
    from medgan3d.cli.handler import _message, one_line

    assert (
        one_line("2 volume(s) unusable:\n  a.nii: shape\n  b.nii: NaN\n")
        == "2 volume(s) unusable: a.nii: shape; b.nii: NaN"
    )
    assert one_line("first\nsecond") == "first; second"
    assert _message(FileExistsError(17, "File exists", "/x/out")) == "/x/out: File exists"
