"""`medgan3d prepare`: a folder of scans (or an embedded phantom population) -> a cached dataset.

    medgan3d prepare SRC --preset coca -o data/coca [--workers N] [--strict] [--max-voxels N]
    medgan3d prepare brain-phantom -n 32 -o data/brain [--seed S] [--shape 32x32x32]
    medgan3d prepare heart-phantom -n 200 -o data/heart [--seed S] [--shape 32x64x64]
    medgan3d prepare SRC --labels labels.csv ...       (file,label rows: conditional models)
    medgan3d prepare brain-phantom --labelled ...      (two classes and their labels.csv)

Imports are lazy so that `medgan3d --help` stays instant.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from medgan3d.cli import command
from medgan3d.cli.options import DEFAULT_CONFIG

if TYPE_CHECKING:
    from medgan3d.data import PreprocessConfig

PHANTOMS = {"brain-phantom": "adni", "heart-phantom": "coca"}  # the preprocessing preset each one uses
FOLDER_ONLY = {"--preset", "--strict", "--window", "--spacing", "--antialias", "--labels", "--label-kind"}
PHANTOM_ONLY = {"--num", "--inplane", "--raw-dir", "--labelled"}


def _triple(text: str | None, flag: str, cast=int) -> tuple | None:
    """'32x64x64' or '32,64,64' (or one number for all three) -> a tuple."""
    if text is None:
        return None
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = tuple(cast(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"expected e.g. 32x64x64, got {text!r}", param_hint=flag) from None
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise typer.BadParameter(f"expected three values D x H x W, got {text!r}", param_hint=flag)
    return values


def _window(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(
            f"expected LO,HI (e.g. -250,650), got {text!r}", param_hint="--window"
        ) from None
    return lo, hi


@command
def prepare(
    ctx: typer.Context,
    src: str = typer.Argument(
        ..., help="Folder (recursive), glob, text file of paths, or brain-phantom/heart-phantom."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output dataset folder (replaced atomically)."),
    preset: str = typer.Option(
        "coca",
        "--preset",
        "-p",
        help="Preprocessing (intensities, resampling): coca (CT) | adni (MRI) | hagan-ct | hagan-mri | "
        "brain-t1-2mm | brain-t1-1mm | generic.",
    ),
    config: str = typer.Option(
        DEFAULT_CONFIG,
        "--config",
        "-c",
        help="Model preset the data is for (as in train --config): its output shape is the default --shape.",
    ),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes."),
    strict: bool = typer.Option(
        False,
        "--strict/--no-strict",
        help="Stop at the first bad file and leave no output (default: skip it, say why).",
    ),
    shape: str | None = typer.Option(
        None,
        "--shape",
        help="Target D x H x W, e.g. 32x64x64 or 64 (default: the output shape of --config if given, else the "
        "--preset's own if given, else tiny's 16³, train's default).",
    ),
    window: str | None = typer.Option(
        None, "--window", help="Intensity window LO,HI, e.g. HU -250,650 (default: the preset's)."
    ),
    spacing: str | None = typer.Option(
        None,
        "--spacing",
        help="Resample first to this spacing in mm, e.g. 2 or 1x1x2 (generic; default: the preset's).",
    ),
    crop: str | None = typer.Option(
        None, "--crop", help="Depth window: center | random (seeded) (default: the preset's)."
    ),
    antialias: bool | None = typer.Option(
        None, "--antialias/--no-antialias", help="Blur before downsampling (default: the preset's)."
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
    n: int = typer.Option(
        32, "-n", "--num", min=1, help="Phantom subjects (brain-phantom / heart-phantom only)."
    ),
    inplane: int = typer.Option(128, "--inplane", help="Raw in-plane pixels of heart-phantom scans."),
    raw_dir: Path | None = typer.Option(
        None, "--raw-dir", help="Also keep the raw phantom scans (NIfTI) here (default: not kept)."
    ),
    all_slices: bool = typer.Option(
        False,
        "--all-slices/--no-all-slices",
        help="Also keep every axial slice (slices.npy) for 2D pretraining (coca).",
    ),
    labels: Path | None = typer.Option(
        None,
        "--labels",
        help="CSV of file,label rows (an integer class or a float value per scan); training on the dataset "
        "then builds a conditional model. A row naming no scan, or a scan without a row, is refused "
        "(default: no labels).",
    ),
    label_kind: str = typer.Option(
        "auto", "--label-kind", help="auto (all integers: classes, else values) | class | value."
    ),
    labelled: bool = typer.Option(
        False,
        "--labelled/--no-labelled",
        help="Phantoms: two classes alternating by subject (brain: 1 = enlarged ventricles; heart: 1 = a 7 mm "
        "thicker myocardium), with their labels.csv.",
    ),
) -> None:
    """Read, preprocess (paper presets) and cache volumes; report.json says what was skipped and why."""
    from medgan3d.cli.checks import check_out_folder, explicit_options
    from medgan3d.console import make_console
    from medgan3d.errors import UsageError

    check_out_folder(out)
    if labels is not None and src not in PHANTOMS and not labels.is_file():
        raise UsageError(f"--labels {labels}: no such file")
    _check_options(ctx, src, preset)
    size = _triple(shape, "--shape") or _model_shape(config, explicit_options(ctx))
    cfg = None if src in PHANTOMS else _preprocessing(preset, size, window, spacing, crop, antialias, seed)
    console = make_console(stderr=True)
    kw = {"workers": workers, "dtype": dtype, "val_fraction": val_fraction, "split_seed": seed}
    kw["max_voxels"] = max_voxels
    kw["all_slices"] = all_slices
    if labels is not None and src not in PHANTOMS:
        kw |= {"labels": labels, "label_kind": label_kind}
    if label_kind not in ("auto", "class", "value"):
        raise UsageError(f"--label-kind {label_kind!r}: choose auto, class or value")
    if labelled and src in PHANTOMS:
        kw["labelled"] = True
    start = time.perf_counter()
    with _progress(console) as bar:
        if cfg is None:
            report = _phantoms(src, n, out, seed, size, inplane, crop, raw_dir, bar, kw)
        else:
            report = _folder(src, out, cfg, strict, bar, kw)
    _summary(console, report, out, time.perf_counter() - start)


def _model_shape(config: str, given: list[str]) -> tuple[int, int, int] | None:
    """The default --shape: the output shape of ``-c`` when given; else, when ``--preset`` is given, None (the
    preprocessing preset's own shape, e.g. coca's 32×64×64); else that of train's default preset, so that a bare
    `prepare DIR` and a bare `train` fit each other."""
    from medgan3d.config import load_preset
    from medgan3d.errors import UsageError

    if "--config" not in given and "--preset" in given:
        return None
    try:
        model = load_preset(config).model
    except (ValueError, OSError) as exc:
        raise UsageError(f"--config {config!r}: {exc}") from exc
    shape = tuple(model.output_shape[1:])
    if len(shape) != 3:
        raise UsageError(f"--config {config}: a {len(shape)}D preset; give the 3D preset its twin comes from")
    return shape[0], shape[1], shape[2]


def _check_options(ctx: typer.Context, src: str, preset: str) -> None:
    """Refuse an unknown preset name (phantoms too: a typo must not pass); warn of options that do not apply."""
    from medgan3d.cli.checks import explicit_options, warn
    from medgan3d.data import PRESETS
    from medgan3d.errors import UsageError

    if preset not in PRESETS:
        raise UsageError(f"--preset {preset!r}: unknown preset; choose from {', '.join(sorted(PRESETS))}")
    given = explicit_options(ctx)
    if src in PHANTOMS:
        ignored = [f for f in given if f in FOLDER_ONLY and not (f == "--preset" and preset == PHANTOMS[src])]
        if ignored:
            warn(f"{src} is always prepared with the {PHANTOMS[src]} preset; ignoring {', '.join(ignored)}")
    elif ignored := [f for f in given if f in PHANTOM_ONLY]:
        warn(f"ignoring {', '.join(ignored)}: options of {' and '.join(PHANTOMS)} only, not of a scan folder")


def _preprocessing(
    preset: str,
    shape: tuple | None,
    window: str | None,
    spacing: str | None,
    crop: str | None,
    antialias: bool | None,
    seed: int,
) -> PreprocessConfig:
    from medgan3d.data import get_preset
    from medgan3d.errors import UsageError

    try:
        return get_preset(
            preset,
            shape=shape,
            window=_window(window),
            spacing=_triple(spacing, "--spacing", float),
            crop=crop,
            antialias=antialias,
            seed=seed,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _folder(src, out, cfg, strict, bar, kw) -> dict:
    from medgan3d.data import prepare_dataset

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
    if "fingerprint" in report:
        _fingerprint(console, report["fingerprint"], out)


def _fingerprint(console, fp: dict, out: Path) -> None:
    """The dataset's spread in one line, then each outlier with its reasons (report.json has every scan)."""
    from rich.markup import escape

    def span(key: str, unit: str = "") -> str:
        lo, mid, hi = ("×".join(f"{x:.4g}" for x in fp[key][k]) for k in ("min", "median", "max"))
        return f"{mid}{unit} (min {lo}, max {hi})"

    p1, p50, p99 = fp["intensity_p1_p50_p99"]["median"]
    console.print(
        f"fingerprint of {fp['scans']} scans: shape {span('shape')}, spacing {span('spacing_mm', ' mm')}, "
        f"raw intensities 1-50-99 % {p1:.4g}, {p50:.4g}, {p99:.4g} (medians)",
        markup=False,
    )
    for item in fp["outliers"]:
        console.print(
            f"  [yellow]outlier[/yellow] {escape(item['source'])}: {escape('; '.join(item['reasons']))}"
        )
    console.print(f"preview (check windowing and orientation): {out / 'preview.png'}", markup=False)
