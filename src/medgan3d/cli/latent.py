"""`medgan3d mix` and `medgan3d interpolate`: style-mixing grids and latent walks of a StyleGAN2 run.

    medgan3d mix RUN --rows 0,1,2 --cols 10,11 --styles coarse|middle|fine|A-B -o OUT [--psi 0.7]
    medgan3d interpolate RUN --seeds 0,7 [--latents a.npz,b.npz] --steps 8 [--styles fine] -o OUT

Rows, columns and endpoints are seeds or projected latents (`projected.npz` of `medgan3d project`).
Imports are lazy so that `medgan3d --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

from medgan3d.cli import command
from medgan3d.cli import options as opt
from medgan3d.errors import UsageError

STYLES_HELP = (
    "Layers: coarse | middle | fine (bands of the model's stages) | all | none | A-B | a,b,c (w indices)."
)


def _checks(out: Path, data: Path | None, device: str, psi: float) -> None:
    from medgan3d.cli.checks import check_device, check_out_folder, check_prepared

    check_out_folder(out)
    check_device(device)
    if data is not None:
        check_prepared(data)
    if not -10.0 <= psi <= 10.0:
        raise UsageError(f"--trunc {psi}: expected a truncation factor, usually in [0, 1]")


@command
def mix(
    run: Path = typer.Argument(..., help="StyleGAN2 run folder (G_ema of its newest intact checkpoint)."),
    rows: str = typer.Option(
        ..., "--rows", help="Base latents: seeds and/or projected .npz files, e.g. 0,1,a.npz."
    ),
    cols: str = typer.Option(..., "--cols", help="Latents whose --styles layers replace the rows'."),
    styles: str = typer.Option("coarse", "--styles", help=STYLES_HELP),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
    psi: float = typer.Option(1.0, "--trunc", "--psi", help="Truncation ψ of the seeds towards w_avg."),
    noise: str = typer.Option(
        "const",
        "--noise",
        help="const (the generator's stored maps) | none | latent (a projected row's maps).",
    ),
    data: opt.RunGeometry = None,
    clip: opt.Clip = True,
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Style-mixing grid: rows give the base ws, columns replace a band of layers; NIfTI per cell, 3 PNG grids."""
    from medgan3d.latents import NOISE_MODES
    from medgan3d.mix import mix as run_mix

    _checks(out, data, device, psi)
    if noise not in NOISE_MODES:
        raise UsageError(f"--noise {noise!r}: choose from {' | '.join(NOISE_MODES)}")
    record = run_mix(run, rows, cols, styles, out, psi, noise, data, device, clip)
    typer.echo(
        f"{len(record['rows'])}×{len(record['cols'])} mixes of {record['band']} -> {out} "
        f"({', '.join(record['grids'])})"
    )


@command
def interpolate(
    run: Path = typer.Argument(..., help="StyleGAN2 run folder (G_ema of its newest intact checkpoint)."),
    seeds: str = typer.Option("", "--seeds", help="Seeds to walk through, e.g. 0,7."),
    latents: str = typer.Option(
        "", "--latents", help="Projected .npz files to walk through (after the seeds)."
    ),
    steps: int = typer.Option(8, "--steps", min=2, help="Frames per segment, both ends included."),
    styles: str = typer.Option("all", "--styles", help=STYLES_HELP),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
    psi: float = typer.Option(1.0, "--trunc", "--psi", help="Truncation ψ of the seeds towards w_avg."),
    noise: str = typer.Option("const", "--noise", help="const (the generator's stored maps) | none."),
    frame_ms: int = typer.Option(150, "--frame-ms", min=10, help="GIF frame duration in milliseconds."),
    data: opt.RunGeometry = None,
    clip: opt.Clip = True,
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Linear walk in W (optionally only some layers): a NIfTI per frame and walk.gif of the centre slices."""
    from medgan3d.interpolate import interpolate as run_walk

    _checks(out, data, device, psi)
    if noise not in ("const", "none"):
        raise UsageError(f"--noise {noise!r}: choose from const | none")
    record = run_walk(run, out, seeds, latents, steps, styles, psi, noise, data, device, frame_ms, clip)
    typer.echo(
        f"{len(record['frames'])} frames through {len(record['endpoints'])} latents ({record['band']}) "
        f"-> {out} (walk.gif)"
    )
