"""The filesystem module: temp-then-rename for files and folders, umask modes, chunked SHA-256."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from medgan3d.fs import CHUNK, atomic_dir, atomic_write, file_sha256


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_sha256_matches_hashlib_over_several_chunks(tmp_path: Path) -> None:
    data = os.urandom(CHUNK * 2 + 12345)
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    (tmp_path / "e").write_bytes(b"")
    assert file_sha256(tmp_path / "e") == hashlib.sha256(b"").hexdigest()


def test_atomic_write_keeps_suffixes_follows_umask_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    seen: list[str] = []

    def write(p: Path) -> None:
        seen.append(p.name)
        p.write_text("new", encoding="utf-8")
        os.chmod(p, 0o600)  # as safetensors does

    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.nii.gz", write)
    finally:
        os.umask(old)
    assert seen[0].endswith(".nii.gz") and seen[0] != "a.nii.gz"
    assert (tmp_path / "a.nii.gz").read_text(encoding="utf-8") == "new" and _mode(
        tmp_path / "a.nii.gz"
    ) == 0o640

    def fail(p: Path) -> None:
        p.write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "a.nii.gz", fail)
    assert (tmp_path / "a.nii.gz").read_text(encoding="utf-8") == "new"
    assert _leftovers(tmp_path) == []


def test_atomic_dir_installs_only_complete_folders(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out"
    with atomic_dir(out) as tmp:
        assert tmp.parent == out.parent and tmp.name.startswith(".out.tmp-") and not out.exists()
        (tmp / "x").write_text("1", encoding="utf-8")
    assert (out / "x").read_text(encoding="utf-8") == "1"

    with pytest.raises(KeyboardInterrupt), atomic_dir(out, replace=True) as tmp:
        (tmp / "x").write_text("2", encoding="utf-8")
        raise KeyboardInterrupt
    assert (out / "x").read_text(encoding="utf-8") == "1" and _leftovers(out.parent) == []

    with pytest.raises(FileExistsError, match="already exists"), atomic_dir(out) as tmp:
        (tmp / "x").write_text("3", encoding="utf-8")
    assert (out / "x").read_text(encoding="utf-8") == "1" and _leftovers(out.parent) == []

    with atomic_dir(out, replace=lambda old: (old / "x").is_file(), prefix=".t-") as tmp:
        assert tmp.name.startswith(".t-")
        (tmp / "y").write_text("4", encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["y"] and _leftovers(out.parent) == []


def test_atomic_dir_mode_follows_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert _mode(tmp_path / "d") == 0o755
