"""`medgan3d project`: real scans into a trained model's latent space, and back, for the run's family.

    medgan3d project RUN scan.nii.gz [more scans ...] -o OUT [--steps N] [--space w|w+] [--loss NAME]
    medgan3d project RUN --data DATASET [--split val] [--limit N] -o OUT
    medgan3d project RUN --data DATASET --features -o OUT [--split val]        (HA-GAN)

StyleGAN2 runs are inverted by optimisation (medgan3d.project.stylegan); HA-GAN runs use their encoder.
Imports are lazy so that `medgan3d --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from medgan3d.cli import command
from medgan3d.errors import UsageError

STYLEGAN_ONLY = ("--space", "--loss", "--noise", "--noise-reg", "--lr", "--snapshots", "--w-avg-samples")
HAGAN_ONLY = ("--chunk-depth", "--features")


@command
def project(
    ctx: typer.Context,
    run: Path = typer.Argument(..., help="Run folder (its newest intact checkpoint) or checkpoint."),
    scans: list[Path] = typer.Argument(
        None, help="Scans to project (any readable format: NIfTI, DICOM, ...)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (one sub-folder per scan)."),
    steps: int | None = typer.Option(
        None,
        "--steps",
        min=0,
        help="Optimisation steps (StyleGAN2: default 1000; HA-GAN: refine z, default 0).",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Prepared dataset: its preprocessing for the scans, or its volumes without scans (default: none).",
    ),
    split: str | None = typer.Option(
        None, "--split", help="Only this split of --data: train or val (default: both)."
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="At most N volumes of --data (default: all)."
    ),
    space: str = typer.Option(
        "w", "--space", help="StyleGAN2: w (one w for all layers) or w+ (one per layer)."
    ),
    loss: str = typer.Option(
        "mse-ssim",
        "--loss",
        help="StyleGAN2 data term: mse | ms-mse | ssim | mse-ssim | 3dstylegan (published).",
    ),
    noise: str = typer.Option(
        "optimize", "--noise", help="StyleGAN2 noise maps: optimize | const (the generator's, fixed) | none."
    ),
    noise_reg: float | None = typer.Option(
        None,
        "--noise-reg",
        min=0.0,
        help="StyleGAN2 noise regulariser weight (default 1e5; 0 with 3dstylegan).",
    ),
    lr: float | None = typer.Option(
        None, "--lr", help="StyleGAN2 peak learning rate (default 0.1; 0.3 with 3dstylegan)."
    ),
    snapshots: int = typer.Option(
        10, "--snapshots", min=0, help="StyleGAN2: centre-slice PNGs over the steps."
    ),
    w_avg_samples: int = typer.Option(
        10_000, "--w-avg-samples", min=1, help="StyleGAN2: z samples for w_avg."
    ),
    chunk_depth: int = typer.Option(
        8, "--chunk-depth", min=0, help="HA-GAN: latent slices per decoding slab (0: all)."
    ),
    features: bool = typer.Option(
        False, "--features/--no-features", help="HA-GAN: write z of every volume of --data."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the initial noise maps and w-noise (HA-GAN: of crops)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Project scans into a run's latent space; write the latent, the reconstruction and PSNR/SSIM per scan."""
    from medgan3d.cli.checks import check_device, check_out_folder, check_prepared, explicit_options, warn
    from medgan3d.project import ProjectorConfig, family_of

    check_out_folder(out)
    check_device(device)
    if data is not None:
        check_prepared(data)
    if not scans and data is None:
        raise UsageError("give one or more scans to project, or --data DATASET [--split val]")
    try:
        cfg = ProjectorConfig.named(
            loss,
            space=space,
            noise=noise,
            noise_reg=noise_reg,
            lr=lr,
            seed=seed,
            snapshots=snapshots,
            w_avg_samples=w_avg_samples,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    family = family_of(run)
    given = explicit_options(ctx)
    foreign = [f for f in given if f in (STYLEGAN_ONLY if family == "hagan" else HAGAN_ONLY)]
    if family != "hagan" and features:
        raise UsageError(
            "--features is HA-GAN's encoder; a StyleGAN2 run is projected by optimisation "
            "(its ws are in each projected.npz)"
        )
    if foreign:
        warn(f"{run} is a {family} run; ignoring {', '.join(foreign)}")
    if features:
        _features(run, data, out, split, device)
        return
    _project(
        run,
        scans or [],
        out,
        data,
        split,
        limit,
        cfg,
        steps,
        device,
        {"chunk_depth": chunk_depth, "seed": seed},
    )


def _features(run: Path, data: Path | None, out: Path, split: str | None, device: str) -> None:
    from medgan3d.project import dataset_features, load_hagan

    if data is None:
        raise UsageError("--features needs --data DATASET")
    path = dataset_features(load_hagan(run, device), data, out, split)
    typer.echo(f"features of {data} -> {path} (rows: {path.with_suffix('.csv')})")


def _project(
    run: Path,
    scans: list[Path],
    out: Path,
    data: Path | None,
    split: str | None,
    limit: int | None,
    cfg: Any,
    steps: int | None,
    device: str,
    hagan: dict[str, Any],
) -> None:
    from medgan3d.console import make_console
    from medgan3d.project import project

    with _progress(make_console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        def progress(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        results = project(run, out, scans, data, split, limit, cfg, steps, device, hagan, progress)
    for metrics in results:
        typer.echo(f"{metrics['scan']} -> {metrics['folder']}: {_scores(metrics)}")


def _scores(metrics: dict[str, Any]) -> str:
    if "scores" not in metrics:  # HA-GAN
        best = metrics.get("refined", metrics["encoder"])
        return f"PSNR {best['psnr_db']:.2f} dB, SSIM {best['ssim']:.3f}"
    rec, off = metrics["scores"]["reconstruction"], metrics["scores"]["noise_off"]
    return (
        f"PSNR {rec['psnr_db']:.2f} dB, SSIM {rec['ssim']:.3f} "
        f"(noise off: PSNR {off['psnr_db']:.2f} dB, SSIM {off['ssim']:.3f})"
    )


def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
