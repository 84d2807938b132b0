"""`medgan3d` command line: one typer app, one module per command, lazy imports so `--help` is instant."""

from __future__ import annotations

import typer

from medgan3d.cli import demo, info, prepare
from medgan3d.cli import evaluate as evaluate_cmd
from medgan3d.cli import inflate as inflate_cmd
from medgan3d.cli import train as train_cmd

app = typer.Typer(
    name="medgan3d",
    help="Synthetic 3D medical images: prepare data, train, generate, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("info")(info.info)
app.command("demo")(demo.demo)
app.command("prepare")(prepare.prepare)
app.command("train")(train_cmd.train)
app.command("pretrain")(train_cmd.pretrain)
app.command("generate")(train_cmd.generate)
app.command("inflate")(inflate_cmd.inflate)
app.command("evaluate")(evaluate_cmd.evaluate)


def main() -> None:
    """Console entry point: the fast allocator when available (see medgan3d.runtime), then the app."""
    from medgan3d.runtime import ensure_fast_allocator

    ensure_fast_allocator()
    app()
