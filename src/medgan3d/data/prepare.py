"""`prepare`: find scans, preprocess them in parallel, write a cached dataset atomically.

Output folder ``DIR``::

    volumes.npy    float16/float32 [N, 1, D, H, W], memory-mappable (np.load(..., mmap_mode="r"))
    slices.npy     (``all_slices``, depth-cropping presets) every axial slice of every scan [M, 1, H, W]
    dataset.json   manifest: count, shape, preset (all parameters), per-item source/geometry/split, hash
    report.json    what was read, what was skipped and why; the dataset's fingerprint and its outliers
    preview.png    centre slices of a few volumes in three planes, with the window (medgan3d.data.fingerprint)

The folder is built as ``.DIR.tmp-*`` next to ``DIR`` and renamed into place only when complete, so a
half-written ``DIR`` never exists. Nothing time-dependent is written: the same SRC gives the same bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from medgan3d.data.fingerprint import PREVIEW_NAME, fingerprint, scan_statistics, write_preview
from medgan3d.data.io import (
    DICOM_SUFFIXES,
    IMAGE_SUFFIXES,
    MAX_VOXELS,
    VolumeMeta,
    VolumeReadError,
    dicom_series,
    read_dicom_series,
    read_volumes,
    spacing_affine,
    special_file_reason,
    suffix_of,
)
from medgan3d.data.labels import LABELS_NAME, LabelSpec, check_csv_against_sources, label_items, labels_block
from medgan3d.data.manifest import (
    ARRAY_NAME,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    REPORT_NAME,
    SLICES_NAME,
)
from medgan3d.data.preprocess import PreprocessConfig, preprocess
from medgan3d.fs import atomic_dir


class PrepareError(RuntimeError):
    """A run that stopped (``--strict`` or nothing usable); the message names the file and the reason."""


@dataclass(frozen=True)
class Source:
    """One unit of work: a file, or a folder of DICOM files; ``name`` is how it is reported."""

    path: str
    name: str
    series: str | None = None


# --------------------------------------------------------------------------------------------- discovery
def _is_dicom_candidate(path: Path) -> bool:
    """A ``.dcm``/``.ima`` or extension-less file, or any other file with the DICOM preamble ``DICM``.

    PACS exports often name files by their UID (``1.2.840.113619.2.55.3.17``): the "suffix" is a number.
    """
    name = path.name
    if suffix_of(name) in DICOM_SUFFIXES or "." not in name:
        return True
    if suffix_of(name) in IMAGE_SUFFIXES:
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _walk(root: Path) -> tuple[list[Path], list[Path], list[Path], list[tuple[Path, str]]]:
    """(image files, DICOM folders, ignored files, (special file, reason)) below ``root``, sorted.

    Link loops, dangling links and FIFOs/sockets/devices are set apart before anything opens them.
    """
    images: list[Path] = []
    dicom_dirs: list[Path] = []
    ignored: list[Path] = []
    special: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        folder = Path(dirpath)
        has_dicom = False
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            reason = special_file_reason(folder / f)
            if reason:
                special.append((folder / f, reason))
                continue
            suffix = suffix_of(f)
            if suffix in IMAGE_SUFFIXES and suffix not in DICOM_SUFFIXES:
                images.append(folder / f)
            elif _is_dicom_candidate(folder / f):
                has_dicom = True
            else:
                ignored.append(folder / f)
        if has_dicom:
            dicom_dirs.append(folder)
    return images, dicom_dirs, ignored, special


def _relname(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root).as_posix() or "."
        except ValueError:
            pass
    return str(path)


def _dicom_sources(folder: Path, root: Path | None) -> tuple[list[Source], list[dict]]:
    """One Source per series; ``.dcm`` files that belong to no series are reported as skipped."""
    try:
        series = dicom_series(folder)
    except Exception as err:  # GDCM on an unreadable folder
        return [], [{"source": _relname(folder, root), "reason": f"cannot scan for DICOM: {err}"}]
    sources: list[Source] = []
    in_series: set[str] = set()
    for uid, files in sorted(series.items()):
        in_series.update(os.path.realpath(f) for f in files)
        sources.append(Source(str(folder), f"{_relname(folder, root)}#{uid}", uid))
    skipped = [
        {"source": _relname(p, root), "reason": "not a readable DICOM file"}
        for p in sorted(folder.iterdir())
        if p.is_file() and suffix_of(p) in DICOM_SUFFIXES and os.path.realpath(p) not in in_series
    ]
    return sources, skipped


def discover(src: str | os.PathLike) -> tuple[list[Source], list[dict], list[str]]:
    """Resolve SRC (a folder, searched recursively; a glob; a text file of paths; one image file).

    Returns (sources, skipped, ignored): ``skipped`` are ``{"source", "reason"}`` for paths that cannot be
    used at all, ``ignored`` names non-image files found while walking folders.
    """
    src_s = str(src)
    path = Path(src_s)
    if any(c in src_s for c in "*?[") and not os.path.lexists(path):
        return _from_paths([Path(p) for p in sorted(glob.glob(src_s, recursive=True))], None)
    special = special_file_reason(path)
    if special:
        raise PrepareError(f"{src_s}: {special}")
    if path.is_dir():
        return _from_folder(path)
    if path.is_file() and suffix_of(path) not in IMAGE_SUFFIXES:
        lines = path.read_text(errors="replace").splitlines()
        entries = [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]
        return _from_paths([(path.parent / e) for e in entries], None, listed=True)
    if path.is_file():
        return [Source(str(path), str(path))], [], []
    raise PrepareError(f"{src_s}: no such file, folder or matching glob")


def _from_folder(root: Path) -> tuple[list[Source], list[dict], list[str]]:
    images, dicom_dirs, ignored, special = _walk(root)
    sources = [Source(str(p), _relname(p, root)) for p in images]
    skipped = [{"source": _relname(p, root), "reason": reason} for p, reason in special]
    for folder in dicom_dirs:
        s, k = _dicom_sources(folder, root)
        sources += s
        skipped += k
    sources, duplicates = _dedupe(sources)
    sources.sort(key=lambda s: s.name)
    skipped.sort(key=lambda k: k["source"])
    return sources, skipped, [_relname(p, root) for p in ignored] + duplicates


def _from_paths(
    paths: Iterable[Path], root: Path | None, listed: bool = False
) -> tuple[list[Source], list[dict], list[str]]:
    sources: list[Source] = []
    skipped: list[dict] = []
    ignored: list[str] = []
    for p in paths:
        special = special_file_reason(p)
        if special:
            entry = {"source": str(p), "reason": special}
            skipped += [entry] if entry not in skipped else []
        elif p.is_dir():
            s, k, i = _from_folder(p)
            sources += [Source(x.path, f"{p}/{x.name}", x.series) for x in s]
            skipped += [{**x, "source": f"{p}/{x['source']}"} for x in k if x not in skipped]
            ignored += [x for x in i if x not in ignored]
        elif listed or p.exists():
            sources.append(Source(str(p), str(p)))
    # A glob such as 'scans/**' matches a folder and the files inside it, a list may name a file twice.
    unique, duplicates = _dedupe(sources)
    return unique, skipped, ignored + [d for d in duplicates if d not in ignored]


def _identity(path: str) -> tuple:
    """What makes two paths the same file: device and inode (links, hard links), else the real path."""
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except OSError:
        return (os.path.realpath(path),)


def _dedupe(sources: list[Source]) -> tuple[list[Source], list[str]]:
    """Each scan (file, or DICOM series) once: under its own name rather than a link's, else the first.

    Returns (kept sources in their original order, ``"name (same file as kept)"`` for each one dropped).
    """
    order = sorted(range(len(sources)), key=lambda i: (os.path.islink(sources[i].path), i))
    kept: dict[tuple, int] = {}
    dropped: list[tuple[int, int]] = []
    for i in order:
        key = (*_identity(sources[i].path), sources[i].series)
        if key in kept:
            dropped.append((i, kept[key]))
        else:
            kept[key] = i
    unique = [sources[i] for i in sorted(kept.values())]
    names = sorted(
        f"{sources[i].name} (same file as {sources[k].name})"
        for i, k in dropped
        if sources[i].name != sources[k].name
    )
    return unique, names


# --------------------------------------------------------------------------------------------- worker
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


Task = tuple[Source, PreprocessConfig, int | None, bool]  # (scan, preset, max_voxels, all_slices)


def keeps_all_slices(cfg: PreprocessConfig) -> bool:
    """Whether the cached volumes already hold every axial slice of their scans: true unless the preset
    takes a window of consecutive slices (``depth="crop_pad"``, e.g. ``coca``'s 32)."""
    return cfg.depth != "crop_pad"


def all_axial_slices(
    array: np.ndarray, meta: VolumeMeta, cfg: PreprocessConfig, source: str, info: dict
) -> np.ndarray:
    """Every axial slice of one scan ``[S, H, W]``, processed as the cached volume's slices are (intensity,
    trimming, resampling, in-plane resize or crop) but without the depth crop/pad.

    Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical Images" (arXiv 2208.03934),
    §3.2 and §4.3.1 pretrain the 2D GAN on all 39,281 axial slices of COCA, not on the 32-slice windows the 3D
    model sees. ``info`` is :func:`preprocess`'s record for the same scan (its ``trimmed_slices``).
    """
    depth = array.shape[0] - sum(info.get("trimmed_slices", (0, 0)))
    if cfg.spacing is not None:  # the same rounding as preprocess' resampling
        depth = max(1, round(depth * float(meta.spacing[0]) / cfg.spacing[0]))
    full, _ = preprocess(array, meta, dataclasses.replace(cfg, shape=(depth, *cfg.shape[1:])), source)
    return full


def process_source(args: Task) -> list[dict]:
    """Preprocess each volume of a source: ``{"source", "array", "info", "stats"}`` (+ ``"slices"``, every
    axial slice, when asked and the preset crops the depth) or ``{"source", "reason"}``; ``stats`` are the
    scan's :func:`~medgan3d.data.fingerprint.scan_statistics`.

    ``args`` is (source, preset, max_voxels, all_slices). Never raises for bad data: an unexpected error is
    reported as that file's reason.
    """
    source, cfg, max_voxels, all_slices = args
    out: list[dict] = []
    try:
        if source.series is None:
            results = read_volumes(source.path, source.name, max_voxels=max_voxels)
        else:
            results = _read_series(source, max_voxels)
    except Exception as err:  # a reader bug must not cost the other scans
        return [{"source": source.name, "reason": f"unexpected error: {type(err).__name__}: {err}"}]
    for res in results:
        if isinstance(res, VolumeReadError):
            out.append({"source": res.source, "reason": res.reason})
            continue
        try:
            array, info = preprocess(res.array, res.meta, cfg, res.source)
            stats = scan_statistics(res.array, array)
            slices = None
            if all_slices and not keeps_all_slices(cfg):
                slices = all_axial_slices(res.array, res.meta, cfg, res.source, info)
        except VolumeReadError as err:
            out.append({"source": err.source, "reason": err.reason})
            continue
        except Exception as err:
            out.append({"source": res.source, "reason": f"preprocessing failed: {type(err).__name__}: {err}"})
            continue
        info = {
            "original_shape": [int(s) for s in res.array.shape],
            "original_spacing": [float(s) for s in res.meta.spacing],
            "original_affine": np.round(res.meta.affine, 6).tolist(),
            "orientation_in": res.meta.orientation_in,
            **info,
        }
        out.append(
            {"source": res.source, "array": array, "info": info, "stats": stats}
            | ({"slices": slices} if slices is not None else {})
        )
    return out


def _read_series(source: Source, max_voxels: int | None) -> list:
    files = dicom_series(source.path).get(source.series or "")
    if not files:
        return [VolumeReadError(source.name, "DICOM series disappeared while reading")]
    try:
        return [read_dicom_series(files, source.name, max_voxels)]
    except VolumeReadError as err:
        return [err]


def _results(tasks: list[Task], workers: int) -> Generator[list[dict], None, None]:
    """``process_source`` of each task, in task order whatever ``workers`` is."""
    if workers <= 1 or len(tasks) <= 1:
        yield from map(process_source, tasks)
        return
    yield from _pool_results(process_source, tasks, min(workers, len(tasks)))


def _worker_main(conn: mp.connection.Connection, fn: Callable[[Task], list[dict]]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    _init_worker()
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent is gone
            return
        if task is None:
            return
        conn.send(fn(task))


class _Worker:
    """A spawned process fed one task at a time, so that if it dies the parent knows which task killed it."""

    def __init__(self, ctx, fn: Callable[[Task], list[dict]]) -> None:
        self.conn, child = ctx.Pipe()
        # spawn, not fork: the parent may already run torch/OpenMP threads, which fork does not survive.
        self.proc = ctx.Process(target=_worker_main, args=(child, fn), daemon=True)
        self.proc.start()
        child.close()  # so that the worker's death reads as EOF on self.conn
        self.index: int | None = None

    def stop(self) -> None:
        if self.index is None:
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(timeout=10)
        if self.proc.is_alive():  # busy (the run is being abandoned) or not stopping
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def _death_reason(proc) -> str:
    proc.join(timeout=10)
    if proc.is_alive():  # its result could not be received, yet it lives: it cannot be trusted further
        proc.kill()
        proc.join()
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            how = f"signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            how = f"signal {-code}"
    else:
        how = f"exit code {code}"
    return f"worker process died ({how}) while reading this file"


def _pool_results(fn: Callable[[Task], list[dict]], tasks: list[Task], workers: int) -> Iterator[list[dict]]:
    """Run ``fn`` over ``tasks`` in ``workers`` processes; yield the results in task order.

    A worker that dies (OOM killer, a reader's segfault) costs only the task it held: that task becomes a
    skipped item and a fresh worker takes the next one (a ``multiprocessing.Pool`` waits forever instead).
    """
    ctx = mp.get_context("spawn")
    todo = list(range(len(tasks)))[::-1]  # popped from the end: in order
    done: dict[int, list[dict]] = {}
    pool = [_Worker(ctx, fn) for _ in range(workers)]
    try:
        nxt = 0
        while nxt < len(tasks):
            for i, w in enumerate(pool):
                if w.index is None and todo:
                    try:
                        w.conn.send(tasks[todo[-1]])
                        w.index = todo.pop()
                    except OSError:  # it died while idle: nothing is lost, a fresh one takes the task
                        w.stop()
                        pool[i] = _Worker(ctx, fn)
            busy = {w.conn: w for w in pool if w.index is not None}
            for ready in mp.connection.wait(list(busy)) if busy else ():
                conn = cast(mp.connection.Connection, ready)  # wait returns the connections it was given
                w, index = busy[conn], busy[conn].index
                assert index is not None  # busy holds the workers with a task
                try:
                    done[index] = conn.recv()
                except Exception:  # EOF: the worker died mid-task (or mid-send)
                    done[index] = [{"source": tasks[index][0].name, "reason": _death_reason(w.proc)}]
                    w.index = None
                    w.stop()
                    pool.remove(w)
                    if todo:
                        pool.append(_Worker(ctx, fn))
                w.index = None
            while nxt in done:
                yield done.pop(nxt)
                nxt += 1
    finally:
        for w in pool:
            w.stop()


# --------------------------------------------------------------------------------------------- splits
def assign_splits(names: list[str], val_fraction: float, seed: int) -> list[str]:
    """Deterministic split: items ordered by a seeded hash of their name; the first share goes to val.

    Depends only on the names, so adding a scan does not reshuffle the others.
    """
    n = len(names)
    n_val = 0 if val_fraction <= 0 or n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    key = [hashlib.sha256(f"{seed}:{name}".encode()).hexdigest() for name in names]
    order = sorted(range(n), key=lambda i: key[i])
    val = set(order[:n_val])
    return ["val" if i in val else "train" for i in range(n)]


# --------------------------------------------------------------------------------------------- writing
def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def _finalize_array(raw: Path, final: Path, count: int, shape: tuple, dtype: np.dtype) -> str:
    """Copy the raw stream of ``count`` arrays of ``shape`` into a .npy with the right header; return the
    sha256 of the data bytes."""
    digest = hashlib.sha256()
    arr = np.lib.format.open_memmap(final, mode="w+", dtype=dtype, shape=(count, *shape))
    per = int(np.prod(shape))
    with raw.open("rb") as fh:
        for i in range(count):
            chunk = np.frombuffer(fh.read(per * dtype.itemsize), dtype=dtype)
            digest.update(chunk.tobytes())
            arr[i] = chunk.reshape(shape)
    arr.flush()
    del arr
    raw.unlink()
    return digest.hexdigest()


def _is_prepared(folder: Path) -> bool:
    """True when ``folder/dataset.json`` is our manifest (other tools, e.g. nnU-Net/MSD, use that name)."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _replaceable(out: Path) -> bool:
    """An existing output folder may be replaced when it is empty or a prepared dataset; else refuse."""
    if out.is_dir() and (not any(out.iterdir()) or _is_prepared(out)):
        return True
    raise PrepareError(f"{out}: exists and is not a prepared dataset; choose another output folder")


def prepare_dataset(
    src: str | os.PathLike,
    out: str | os.PathLike,
    cfg: PreprocessConfig,
    *,
    workers: int = 1,
    strict: bool = False,
    dtype: str = "float16",
    val_fraction: float = 0.1,
    split_seed: int = 0,
    max_voxels: int | None = MAX_VOXELS,
    progress: Callable[[int, int], None] | None = None,
    all_slices: bool = False,
    labels: str | os.PathLike | None = None,
    label_kind: str = "auto",
) -> dict:
    """Build the cached dataset ``out`` from ``src`` with preset ``cfg``; return the report dict.

    ``progress(done, total)`` is called after each source. With ``strict`` the first bad file raises
    :class:`PrepareError` and nothing is left behind. A scan whose header claims more than ``max_voxels``
    voxels (``None``: no limit) is skipped before its data is read. ``all_slices``: also keep every axial
    slice of every scan in ``slices.npy`` (for 2D pretraining, Liu et al., arXiv 2208.03934 §3.2) when the preset crops the depth
    (``coca``); other presets' volumes already hold all of them, and nothing more is written.
    ``labels``: a CSV of ``file,label`` rows (:mod:`medgan3d.data.labels`); each item gets its ``label``, the
    manifest a ``labels`` block (``label_kind`` auto | class | value) and the folder a copy of the CSV. A row
    that names no scan found is refused before any scan is read, a scan without a row once all are read.
    """
    out = Path(out)
    if all_slices and cfg.crop == "random" and cfg.inplane == "crop_pad":
        raise ValueError(
            "all_slices with random in-plane crops is not supported: the slices would be "
            "cropped elsewhere than their volume"
        )
    if str(dtype) not in ("float16", "float32"):
        raise ValueError(f"dtype must be 'float16' or 'float32' (values in [-1, 1]), got {dtype!r}")
    if max_voxels is not None and max_voxels < 1:
        raise ValueError(f"max_voxels must be at least 1 (or None for no limit), got {max_voxels}")
    np_dtype = np.dtype(dtype)
    sources, skipped, ignored = discover(src)
    sources = [s for s in sources if not _inside(Path(s.path), out)]  # never read our own output back
    if strict and skipped:
        raise PrepareError(f"{skipped[0]['source']}: {skipped[0]['reason']}")
    if labels is not None:
        check_csv_against_sources(labels, [s.name for s in sources])
    with atomic_dir(out, replace=_replaceable) as tmp:
        tasks = [(s, cfg, max_voxels, all_slices) for s in sources]
        scans: list[dict] = []
        items = _collect(tasks, workers, strict, np_dtype, tmp, skipped, progress, scans)
        if not items:
            raise PrepareError(f"{src}: no usable volume ({len(skipped)} skipped)" + _first(skipped))
        data_hash = _finalize_array(
            tmp / "volumes.raw", tmp / ARRAY_NAME, len(items), (1, *cfg.shape), np_dtype
        )
        slices = (
            _finalize_slices(tmp, items, cfg, np_dtype) if all_slices and not keeps_all_slices(cfg) else None
        )
        (tmp / "slices.raw").unlink(missing_ok=True)  # empty unless slices.npy was made from it
        label_spec = None
        if labels is not None:
            label_spec, text = label_items(labels, items, label_kind)
            (tmp / LABELS_NAME).write_text(text, encoding="utf-8")
        manifest = build_manifest(
            items, cfg, np_dtype, val_fraction, split_seed, data_hash, slices, label_spec
        )
        prints = fingerprint(items, scans)
        report = {
            "count": len(items),
            "sources": len(sources),
            "skipped": skipped,
            "ignored": ignored,
            "preset": cfg.name,
            "fingerprint": prints,
            "preview": PREVIEW_NAME,
        }
        volumes = np.load(tmp / ARRAY_NAME, mmap_mode="r")
        write_preview(tmp / PREVIEW_NAME, volumes, items, manifest, prints["outliers"])
        del volumes
        (tmp / REPORT_NAME).write_bytes(_json_bytes(report))
        (tmp / MANIFEST_NAME).write_bytes(_json_bytes(manifest))  # last: its presence marks a complete folder
    return report


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False


def _first(skipped: list[dict]) -> str:
    return f"; first: {skipped[0]['source']}: {skipped[0]['reason']}" if skipped else ""


def _finalize_slices(tmp: Path, items: list[dict], cfg: PreprocessConfig, np_dtype: np.dtype) -> dict:
    """``slices.npy`` from the raw stream; the manifest's ``slices`` entry (count, shape, sha256)."""
    count = items[-1]["slice_rows"][1]
    digest = _finalize_array(tmp / "slices.raw", tmp / SLICES_NAME, count, (1, *cfg.shape[1:]), np_dtype)
    return {
        "array": SLICES_NAME,
        "count": count,
        "shape": [1, *cfg.shape[1:]],
        "sha256": digest,
        "what": "every axial slice of every scan, preprocessed as the volumes but not cropped in depth",
    }


def _collect(tasks, workers, strict, np_dtype, tmp: Path, skipped: list, progress, scans: list) -> list[dict]:
    """The kept items (manifest rows) in task order; bad ones go to ``skipped``, statistics to ``scans``."""
    items: list[dict] = []
    rows = 0  # slices written to slices.raw so far
    with (
        (tmp / "volumes.raw").open("wb") as fh,
        (tmp / "slices.raw").open("wb") as sh,
        contextlib.closing(_results(tasks, workers)) as stream,
    ):
        for done, results in enumerate(stream, start=1):
            for res in results:
                if "reason" in res:
                    if strict:
                        raise PrepareError(f"{res['source']}: {res['reason']}")
                    skipped.append({"source": res["source"], "reason": res["reason"]})
                    continue
                fh.write(np.ascontiguousarray(res["array"], dtype=np_dtype).tobytes())
                extra = {}
                if "slices" in res:
                    sh.write(np.ascontiguousarray(res["slices"], dtype=np_dtype).tobytes())
                    extra = {"slice_rows": [rows, rows + len(res["slices"])]}
                    rows += len(res["slices"])
                items.append({"source": res["source"], **res["info"], **extra})
                scans.append(res["stats"])
            if progress is not None:
                progress(done, len(tasks))
    return items


def build_manifest(
    items: list[dict],
    cfg: PreprocessConfig,
    dtype: np.dtype,
    val_fraction: float,
    split_seed: int,
    data_hash: str,
    slices: dict | None = None,
    labels: LabelSpec | None = None,
) -> dict:
    """The ``dataset.json`` content (see docs/data.md for the schema); ``slices`` describes slices.npy,
    ``labels`` (items already labelled) adds the ``labels`` block."""
    splits = assign_splits([it["source"] for it in items], val_fraction, split_seed)
    for i, (it, split) in enumerate(zip(items, splits, strict=True)):
        it["index"] = i
        it["split"] = split
    spacing = [float(np.median([it["spacing"][k] for it in items])) for k in range(3)]
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "array": ARRAY_NAME,
        "dtype": dtype.name,
        "axes": "NCDHW",
        "orientation": "RAS",
        "axis_directions": {"D": "inferior->superior", "H": "posterior->anterior", "W": "left->right"},
        "count": len(items),
        "shape": [1, *cfg.shape],
        "value_range": [-1.0, 1.0],
        "preset": cfg.to_dict(),
        "intensity": _intensity_summary(items, cfg),
        "spacing": spacing,
        "affine": spacing_affine(spacing, cfg.shape).tolist(),
        "val_fraction": val_fraction,
        "split_seed": split_seed,
        "splits": {s: [i for i, x in enumerate(splits) if x == s] for s in ("train", "val")},
        "items": items,
    }
    if slices is not None:
        manifest["slices"] = slices
    if labels is not None:
        manifest["labels"] = labels_block(labels, items)
    body = dict(manifest)
    manifest["content_hash"] = "sha256:" + hashlib.sha256(data_hash.encode() + _json_bytes(body)).hexdigest()
    return manifest


def _intensity_summary(items: list[dict], cfg: PreprocessConfig) -> dict:
    """What maps [-1, 1] back: the window, or (percentile presets) the median per-volume range."""
    if cfg.intensity == "window":
        assert cfg.window is not None  # _validate refuses a window preset without a window
        lo, hi = cfg.window
        return {"kind": "window", "lo": float(lo), "hi": float(hi), "unit": cfg.unit}
    lo = float(np.median([it["intensity_range"][0] for it in items]))
    hi = float(np.median([it["intensity_range"][1] for it in items]))
    return {"kind": "percentile", "lo": lo, "hi": hi, "unit": cfg.unit, "percentiles": list(cfg.percentiles)}
