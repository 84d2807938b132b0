"""`medgan3d info`: architecture summary of a preset."""

from __future__ import annotations

import json
from typing import Any

import typer

from medgan3d.cli import command


@command
def info(
    config: str = typer.Option(
        ..., "--config", "-c", help="Preset name (e.g. coca-ss, coca-ss-2d) or YAML path."
    ),
    as_json: bool = typer.Option(False, "--json/--no-json", help="Print one JSON object instead of tables."),
) -> None:
    """Parameters per module and for G, D and total; output shape; number of w vectors; forward GFLOPs."""
    from medgan3d.config import load_preset
    from medgan3d.summary import summarize

    try:
        preset = load_preset(config)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--config") from exc
    summary = summarize(preset)
    if as_json:
        typer.echo(json.dumps(summary.to_json()))
        return
    _print_tables(summary, preset.description)


def _print_tables(summary: Any, description: str) -> None:
    from rich.table import Table

    from medgan3d.console import make_console

    console = make_console()
    console.print(f"[bold]{summary.name}[/bold] — {description}")
    modules = Table("module", "params", title="parameters per module")
    for name, n in summary.modules.items():
        modules.add_row(name, f"{n:,}")
    console.print(modules)
    nets = [k for k in summary.params if k != "total"]
    totals = Table("", *nets, "total")
    p, g = summary.params, summary.gflops
    totals.add_row("params", *(f"{p[k]:,}" for k in nets), f"{p['total']:,} ({p['total'] / 1e6:.3f}M)")
    flops = [f"{g[k]:.3f}" if k in g else "" for k in nets]
    totals.add_row("GFLOPs / sample (forward)", *flops, f"{sum(g.values()):.3f}")
    console.print(totals)
    paper = f"{summary.paper_params_m:.3f}M" if summary.paper_params_m is not None else "n/a"
    variants = " · ".join(f"{k} {v}" for k, v in summary.variants.items())
    ws = f" · w vectors {summary.num_ws}" if summary.num_ws else ""
    console.print(
        f"output shape {summary.output_shape} · {summary.spatial_dims}D{ws} · {variants} · paper reports {paper}"
    )
