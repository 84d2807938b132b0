"""`medgan3d view`: a self-contained HTML page to scroll through volumes in all three planes, side by side.

    medgan3d view RUN [-n 8] [-o view.html]            # generated volumes of a run beside its real training ones
    medgan3d view samples/ data/coca [more ...]        # any folders of NIfTI volumes, prepared datasets, runs

The page embeds the volumes (no network, no plug-in); see docs/evaluation.md, "Exploring volumes".
"""

from __future__ import annotations

from pathlib import Path

import typer

from medgan3d.cli import command
from medgan3d.errors import UsageError


def _window(text: str) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--window {text!r}: expected LO,HI in the data's units, e.g. -250,650") from None
    if not hi > lo:
        raise UsageError(f"--window {text!r}: HI must be above LO")
    return lo, hi


@command
def view(
    sources: list[Path] = typer.Argument(
        ...,
        help="Runs (generated volumes and the run's real training volumes), prepared datasets, or folders/files "
        "of volumes (NIfTI, NRRD/MHA, npy, DICOM); each becomes a pane.",
    ),
    out: Path = typer.Option(Path("view.html"), "-o", "--out", help="HTML file to write."),
    num: int = typer.Option(8, "-n", "--num", min=1, help="Volumes per pane (seeds SEED.. for a run)."),
    seed: int = typer.Option(0, "--seed", help="First seed of a run's generated volumes."),
    psi: float = typer.Option(1.0, "--trunc", "--psi", help="Truncation ψ of a run's generated volumes."),
    window: str = typer.Option(
        "",
        "--window",
        help="LO,HI in the data's units: the grey-scale range stored and shown first (default: the trained "
        "window of runs, datasets and synthetic files' sidecars; else the 0.5-99.5 percentiles of the voxels).",
    ),
) -> None:
    """Write a self-contained viewer page: every pane's volumes in axial, coronal and sagittal planes."""
    from medgan3d.cli.checks import check_out_folder, warn

    win = _window(window)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--out {out}: expected an .html file")
    check_out_folder(out.parent if str(out.parent) else Path("."))
    from medgan3d.viewer import collect, combine, write_page

    found = collect(sources, num, seed, psi)
    data = combine(found, win, title=" | ".join(str(s) for s in sources))
    panes = ", ".join(f"{g['name']} ({len(g['volumes'])})" for g in data["groups"])
    page = write_page(out, data, "medgan3d viewer", f"Panes: {panes}.")
    size = page.stat().st_size / 1e6
    if size > 100:
        warn(f"{page} is {size:.0f} MB: browsers may be slow; show fewer volumes (-n)")
    typer.echo(
        f"{panes} -> {page} ({size:.1f} MB; window {data['window'][0]:g} to {data['window'][1]:g} "
        f"{data['unit']})"
    )
