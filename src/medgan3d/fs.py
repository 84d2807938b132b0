"""Files on disk: temp-then-rename writers for files and folders, a chunked SHA-256, umask-respecting temps.

Every file or folder medgan3d writes (weights, checkpoints, datasets, samples, reports) is first built under a
temp name beside its destination and renamed into place when complete, so a half-written one never exists
under the final name. Temp files and folders get the mode a plain ``open``/``mkdir`` would give (the umask),
not ``mkstemp``'s private 0600/0700: results are shared within a lab group.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK = 1 << 20  # bytes read at a time when hashing


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike[str]) -> None:
    """Give a ``mkstemp``/``mkdtemp`` path (always 0600/0700) the mode a plain ``open``/``mkdir`` would get."""
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~current_umask())


def umask_temp_dir(parent: str | os.PathLike[str], prefix: str) -> Path:
    """``tempfile.mkdtemp`` in ``parent`` whose mode follows the umask (see :func:`honour_umask`)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    honour_umask(tmp)
    return tmp


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then rename it over ``path``.

    The temp name ends with the same suffixes (``.nii.gz``) so writers that infer the format still work.
    The mode follows the umask.
    """
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix="".join(path.suffixes) or ".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        write(Path(tmp))
        honour_umask(tmp)  # after writing: some writers (safetensors) replace the file with a 0600 one
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(
    out: str | os.PathLike[str],
    replace: bool | Callable[[Path], bool] = False,
    prefix: str | None = None,
) -> Iterator[Path]:
    """Yield an empty temp folder beside ``out``; when the block ends without error, rename it to ``out``.

    On any error (or Ctrl-C) the temp folder is removed and ``out`` is left as it was. An existing ``out``
    is replaced when ``replace`` is true or ``replace(out)`` returns true (which may raise its own error
    instead), by renames: the old folder is moved aside first and deleted after the new one is in place;
    otherwise :class:`FileExistsError`. The temp folder is ``.<out name>.tmp-*`` (or ``prefix`` + ``*``) in
    ``out``'s parent, which is created if missing.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = umask_temp_dir(out.parent, prefix if prefix is not None else f".{out.name}.tmp-")
    try:
        yield tmp
        _install(tmp, out, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _install(tmp: Path, out: Path, replace: bool | Callable[[Path], bool]) -> None:
    if not (out.exists() or out.is_symlink()):
        os.replace(tmp, out)
        return
    if not (replace(out) if callable(replace) else replace):
        raise FileExistsError(f"{out}: already exists; choose a new output folder")
    trash = umask_temp_dir(out.parent, f".{out.name}.old-")
    os.replace(out, trash / "old")
    os.replace(tmp, out)
    shutil.rmtree(trash, ignore_errors=True)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
