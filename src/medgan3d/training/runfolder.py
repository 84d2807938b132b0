"""Run-folder housekeeping for training: the run lock, stale temp folders and logs cut back on resume."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

from medgan3d.fs import atomic_write
from medgan3d.training.checkpoint import CHECKPOINTS_DIR

LOCK_NAME = ".lock"
TEMP_PREFIX = ".tmp-"  # what save_checkpoint names a checkpoint while it is written
LOGS = ("stats.jsonl", "metrics.jsonl")
_KIMG_SLACK = 1e-9  # rows and checkpoints both hold cur_nimg / 1000; slack only for float rounding


class RunLockedError(RuntimeError):
    """Another live process holds the run folder's lock."""


def _locked_by(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"


@contextlib.contextmanager
def lock_run_dir(run_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive lock on ``run_dir/.lock`` (which records this pid) for the ``with`` block.

    Raises :class:`RunLockedError` at once if another process holds it. The kernel drops the lock when the
    holder dies, SIGKILL included, so a leftover lock file never blocks a resume. The file is left in place:
    deleting it would let two processes lock two different files of the same name. On a filesystem without
    ``flock`` a ``RuntimeWarning`` says the run is unprotected and the block runs unlocked.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        if not _try_lock(fd, run_dir):
            warnings.warn(
                f"{path}: this filesystem does not support locks; nothing stops a second process "
                "from training this run at the same time",
                RuntimeWarning,
                stacklevel=3,
            )
            yield path
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_lock(fd: int, run_dir: Path) -> bool:
    """Lock ``fd`` (True), or False if the filesystem has no ``flock``; RunLockedError if it is held."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise RunLockedError(
            f"{run_dir}: another process is training this run ({_locked_by(fd)}); wait for it to finish "
            "or stop it before resuming"
        ) from None
    return True


def clean_stale_temps(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove the ``checkpoints/.tmp-*`` left by a process killed mid-write; return what was removed.

    Only safe while holding :func:`lock_run_dir`: a live writer's temp folder looks the same.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    removed = []
    for path in sorted(root.glob(f"{TEMP_PREFIX}*")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path)
    return removed


def _row_kimg(line: str) -> float | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:  # a line torn by a kill
        return None
    kimg = row.get("kimg") if isinstance(row, dict) else None
    return float(kimg) if isinstance(kimg, int | float) and not isinstance(kimg, bool) else None


def truncate_logs(run_dir: str | os.PathLike[str], kimg: float) -> None:
    """Cut ``stats.jsonl`` and ``metrics.jsonl`` back to their rows with ``kimg <= kimg``.

    For a resume from the checkpoint at ``kimg``: rows written after it would otherwise appear twice. Lines
    that are not a JSON object with a numeric ``kimg`` (a row torn by a kill) are dropped too. Each file is
    rewritten atomically (temp + rename) and only if something changes; missing files are left missing.
    """
    for name in LOGS:
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [
            line if line.endswith("\n") else line + "\n"
            for line in lines
            if (k := _row_kimg(line)) is not None and k <= kimg + _KIMG_SLACK
        ]
        if kept != lines:
            _write_text(path, "".join(kept))


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
