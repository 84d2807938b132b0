"""`medgan3d generate`: sample a trained generator as NIfTI volumes marked synthetic, with PNG previews."""

from __future__ import annotations

from pathlib import Path

import typer

from medgan3d.cli import command
from medgan3d.cli import options as opt
from medgan3d.errors import UsageError


def _parse_seeds(text: str) -> list[int]:
    """``0-9,42`` → [0, ..., 9, 42]; a UsageError names the part that is not a seed or a range."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                seeds += range(int(a), int(b) + 1)
            else:
                seeds.append(int(part))
        except ValueError:
            raise UsageError(f"--seeds: {part!r} is not a seed or a range like 0-9") from None
    if not seeds:
        raise UsageError(f"--seeds {text!r}: no seeds (a range is FIRST-LAST with FIRST <= LAST)")
    return seeds


def _labels_from(path: Path) -> list[float]:
    from medgan3d.data.labels import read_labels_csv

    return [value for _, value in read_labels_csv(path).values()]


@command
def generate(
    source: Path = typer.Argument(
        ..., help="Run folder (latest checkpoint), checkpoint, or saved generator."
    ),
    n: int = typer.Option(
        8, "-n", "--num", min=1, help="Number of volumes (seeds 0..n-1) unless --seeds is given."
    ),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Seeds and ranges, e.g. 0-9,42 (default: 0..n-1)."
    ),
    trunc: float = typer.Option(
        1.0, "--trunc", "--psi", help="Truncation ψ towards the mean latent (1 = none)."
    ),
    out: Path = typer.Option(Path("samples"), "--out", "-o", help="Output folder."),
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Dataset whose manifest maps intensities back (default: the copy of its manifest the run keeps).",
    ),
    raw: bool = typer.Option(
        False, "--raw/--no-raw", help="Keep model intensities [-1, 1] instead of data units."
    ),
    clip: opt.Clip = True,
    chunk_depth: int = typer.Option(
        8, "--chunk-depth", min=0, help="HA-GAN: latent slices per decoding slab (0: whole volume at once)."
    ),
    label: float | None = typer.Option(
        None,
        "--label",
        help="Conditional models: the class (or value) of every volume; a class the model was not trained on "
        "is refused (default: the model's classes in turn).",
    ),
    labels_from: Path | None = typer.Option(
        None,
        "--labels-from",
        help="Conditional models: a file,label CSV (e.g. a dataset's labels.csv); one volume per row with its "
        "label, seeds 0..rows-1 unless --seeds gives as many (default: none).",
    ),
) -> None:
    """Sample volumes as NIfTI (data spacing/affine, intensities in data units, e.g. HU) + PNG previews.

    Each seedNNNN.nii.gz is marked synthetic: its header's descrip names medgan3d, the checkpoint's kimg and
    the window its units are in (cal_min/cal_max = that window), and seedNNNN.json beside it (a BIDS-style
    sidecar) records run, checkpoint, seed, psi, family, window and "synthetic": true. HA-GAN runs write
    full-resolution volumes (e.g. 256³), decoded slab by slab with exact statistics. A conditional model's
    label is recorded in the sidecar's "condition"."""
    from medgan3d.cli.checks import check_out_folder

    if label is not None and labels_from is not None:
        raise UsageError("give --label or --labels-from, not both")
    rows = _labels_from(labels_from) if labels_from is not None else None
    chosen = _parse_seeds(seeds) if seeds else list(range(n if rows is None else len(rows)))
    if rows is not None and len(rows) != len(chosen):
        raise UsageError(
            f"--labels-from {labels_from} has {len(rows)} rows but --seeds gives {len(chosen)} seeds"
        )
    check_out_folder(out)
    from medgan3d.generate import find_manifest, sample_to_nifti
    from medgan3d.viz import MODEL_WINDOW, IntensityWindow

    written = sample_to_nifti(
        source,
        chosen,
        out,
        psi=trunc,
        data=data,
        raw=raw,
        chunk_depth=chunk_depth or None,
        clip=clip,
        label=label,
        labels=rows,
    )
    window = MODEL_WINDOW if raw else IntensityWindow.of_manifest(find_manifest(source, data))
    state = "clipped to" if clip else "not clipped to"
    typer.echo(
        f"{len(written)} synthetic volumes + JSON sidecars → {out} (preview: {out / 'preview.png'}); "
        f"values in {window.describe()}, {state} the window"
    )
