"""`medgan3d prepare`: a folder of scans (or an embedded phantom population) -> a cached dataset.

    medgan3d prepare SRC --preset coca -o data/coca [--workers N] [--strict] [--max-voxels N]
    medgan3d prepare brain-phantom -n 32 -o data/brain [--seed S] [--shape 32x32x32]
    medgan3d prepare heart-phantom -n 200 -o data/heart [--seed S] [--shape 32x64x64]

Imports are lazy so that `medgan3d --help` stays instant.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

PHANTOMS = ("brain-phantom", "heart-phantom")


def _triple(text: str | None, cast=int) -> tuple | None:
    """'32x64x64' or '32,64,64' (or one number for all three) -> a tuple."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(cast(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"expected e.g. 32x64x64, got {text!r}") from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise typer.BadParameter(f"expected three values D x H x W, got {text!r}")
    return values


def _window(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected LO,HI (e.g. -250,650), got {text!r}") from None
    return lo, hi


def prepare(
    src: str = typer.Argument(
        ..., help="Folder (recursive), glob, text file of paths, or brain-phantom/heart-phantom."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output dataset folder (replaced atomically)."),
    preset: str = typer.Option("coca", "--preset", "-p", help="coca | adni | hagan-ct | generic."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first bad file; leave no output."),
    shape: str | None = typer.Option(None, "--shape", help="Target D x H x W, e.g. 32x64x64 or 64."),
    window: str | None = typer.Option(None, "--window", help="Intensity window LO,HI (e.g. HU -250,650)."),
    spacing: str | None = typer.Option(None, "--spacing", help="Resample first to this spacing (generic)."),
    crop: str | None = typer.Option(None, "--crop", help="Depth window: center | random (seeded)."),
    antialias: bool | None = typer.Option(
        None, "--antialias/--no-antialias", help="Blur before downsampling."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for random crops, the phantoms and the split."),
    dtype: str = typer.Option("float16", "--dtype", help="Cache dtype: float16 | float32."),
    val_fraction: float = typer.Option(
        0.1, "--val-fraction", min=0.0, max=0.9, help="Share of items in val."
    ),
    max_voxels: int = typer.Option(
        512 * 1024**2,  # medgan3d.data.io.MAX_VOXELS, written out so that --help imports nothing heavy
        "--max-voxels",
        min=1,
        help="Skip, unread, a scan whose header claims more voxels (default 512 Mi: 2 GiB as float32).",
    ),
    n: int = typer.Option(32, "-n", help="Phantom subjects (brain-phantom / heart-phantom only)."),
    inplane: int = typer.Option(128, "--inplane", help="Raw in-plane pixels of heart-phantom scans."),
    raw_dir: Path | None = typer.Option(None, "--raw-dir", help="Keep the raw phantom scans here."),
) -> None:
    """Read, preprocess (paper presets) and cache volumes; report.json says what was skipped and why."""
    from medgan3d.console import make_console, print_error
    from medgan3d.data import PrepareError

    console = make_console(stderr=True)
    kw = {"workers": workers, "dtype": dtype, "val_fraction": val_fraction, "split_seed": seed}
    kw["max_voxels"] = max_voxels
    start = time.perf_counter()
    with _progress(console) as bar:
        try:
            if src in PHANTOMS:
                report = _phantoms(src, n, out, seed, _triple(shape), inplane, crop, raw_dir, bar, kw)
            else:
                report = _folder(
                    src, out, preset, strict, shape, window, spacing, crop, antialias, seed, bar, kw
                )
        except (PrepareError, ValueError, FileNotFoundError) as err:
            print_error(console, err)
            raise typer.Exit(1) from None
    _summary(console, report, out, time.perf_counter() - start)


def _folder(src, out, preset, strict, shape, window, spacing, crop, antialias, seed, bar, kw) -> dict:
    from medgan3d.data import get_preset, prepare_dataset

    cfg = get_preset(
        preset,
        shape=_triple(shape),
        window=_window(window),
        spacing=_triple(spacing, float),
        crop=crop,
        antialias=antialias,
        seed=seed,
    )
    task = bar.add_task("prepare", total=None)
    return prepare_dataset(
        src, out, cfg, strict=strict, progress=lambda d, t: bar.update(task, completed=d, total=t), **kw
    )


def _phantoms(kind, n, out, seed, shape, inplane, crop, raw_dir, bar, kw) -> dict:
    from medgan3d.data import make_brain_phantoms, make_heart_phantoms

    tasks: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    if kind == "brain-phantom":
        return make_brain_phantoms(
            n, out, seed, shape or (64, 64, 64), raw_dir=raw_dir, progress=progress, **kw
        )
    return make_heart_phantoms(
        n,
        out,
        seed,
        shape or (32, 64, 64),
        inplane=inplane,
        crop=crop or "center",
        raw_dir=raw_dir,
        progress=progress,
        **kw,
    )


def _progress(console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _summary(console, report: dict, out: Path, seconds: float) -> None:
    skipped = report["skipped"]
    console.print(
        f"[green]{report['count']} volumes[/green] -> {out}  ({len(skipped)} skipped, {seconds:.1f} s, "
        f"{seconds / max(report['count'], 1):.3f} s/volume)"
    )
    for item in skipped[:20]:
        console.print(f"  skipped {item['source']}: {item['reason']}", markup=False)
    if len(skipped) > 20:
        console.print(f"  ... and {len(skipped) - 20} more in {out / 'report.json'}")
