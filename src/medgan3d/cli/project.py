"""`medgan3d project`: real scans into a trained model's latent space, and back (HA-GAN's encoder).

    medgan3d project RUN scan.nii.gz [more scans ...] -o OUT [--steps N]
    medgan3d project RUN --data DATASET --features -o OUT [--split val]

Imports are lazy so that `medgan3d --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

from medgan3d.cli import command


@command
def project(
    run: Path = typer.Argument(..., help="HA-GAN run folder (its newest intact checkpoint) or checkpoint."),
    scans: list[Path] = typer.Argument(
        None, help="Scans to encode (any readable format: NIfTI, DICOM, ...)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (one sub-folder per scan)."),
    steps: int = typer.Option(0, "--steps", min=0, help="Refine the encoder's z with N optimisation steps."),
    chunk_depth: int = typer.Option(
        8, "--chunk-depth", min=0, help="Latent slices per decoding slab (0: all)."
    ),
    data: Path | None = typer.Option(None, "--data", help="Prepared dataset (with --features)."),
    features: bool = typer.Option(
        False, "--features", help="Write z of every volume of --data (features.npy)."
    ),
    split: str | None = typer.Option(None, "--split", help="Only this split of --data (train or val)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sub-volumes drawn while refining."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
) -> None:
    """Encode scans with a run's encoder; write the reconstruction, the latent and PSNR/SSIM per scan."""
    from medgan3d.generate import find_manifest
    from medgan3d.project import dataset_features, load_hagan, project_scan

    if features:
        if data is None:
            raise ValueError("--features needs --data DATASET")
        model = load_hagan(run, device)
        path = dataset_features(model, data, out, split)
        typer.echo(f"features of {data} -> {path} (rows: {path.with_suffix('.csv')})")
        return
    if not scans:
        raise ValueError("give one or more scans to encode (or --data DIR --features)")
    model = load_hagan(run, device)
    manifest = find_manifest(run, data)
    if manifest is None:
        raise FileNotFoundError(
            f"{run}: no dataset.json beside the run; give --data DATASET (its preprocessing)"
        )
    for scan in scans:
        name = scan.name.split(".")[0] or scan.name
        metrics = project_scan(model, scan, manifest, out / name, steps, chunk_depth or None, seed)
        best = metrics.get("refined", metrics["encoder"])
        typer.echo(f"{scan} -> {out / name}: PSNR {best['psnr_db']:.2f} dB, SSIM {best['ssim']:.3f}")
