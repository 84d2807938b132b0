"""`medgan3d` command line: one typer app, one module per command, lazy imports so `--help` is instant.

Every error ends in :func:`medgan3d.cli.handler.report`: one line ``error: <message>`` on stderr and one exit
code (the table is ``EPILOG``; docs/reliability.md, "Exit codes and error messages"). Commands reach it
through :func:`medgan3d.cli.command`; :func:`run` catches what happens before a command starts (parsing).
Nothing imports this module back: the demo runs its steps through the app it was invoked from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer

from medgan3d.cli import demo, info, prepare
from medgan3d.cli import evaluate as evaluate_cmd
from medgan3d.cli import generate as generate_cmd
from medgan3d.cli import inflate as inflate_cmd
from medgan3d.cli import latent as latent_cmd
from medgan3d.cli import pretrain as pretrain_cmd
from medgan3d.cli import project as project_cmd
from medgan3d.cli import train as train_cmd
from medgan3d.cli import view as view_cmd
from medgan3d.cli.handler import report
from medgan3d.cli.options import Command, Group
from medgan3d.errors import EXIT_USAGE

EPILOG = (
    "Errors are one line on stderr, 'error: <message>'. Exit codes: 0 done; 1 an input could not be used "
    "or the work failed; 2 usage error, refused before anything was created; 3 internal error, a bug "
    "(MEDGAN3D_DEBUG=1 prints the traceback); 130 interrupted; training stopped by Ctrl-C or SIGTERM after a "
    "checkpoint exits 128 + the signal (130, 143): resume it with --resume. See docs/reliability.md."
)

app = typer.Typer(
    name="medgan3d",
    help="Synthetic 3D medical images: prepare data, train, generate, evaluate.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)
COMMANDS: dict[str, Callable[..., Any]] = {
    "info": info.info,
    "demo": demo.demo,
    "prepare": prepare.prepare,
    "train": train_cmd.train,
    "pretrain": pretrain_cmd.pretrain,
    "generate": generate_cmd.generate,
    "inflate": inflate_cmd.inflate,
    "evaluate": evaluate_cmd.evaluate,
    "project": project_cmd.project,
    "mix": latent_cmd.mix,
    "interpolate": latent_cmd.interpolate,
    "view": view_cmd.view,
}
for _name, _fn in COMMANDS.items():
    app.command(_name, cls=Command)(_fn)


def run(argv: Sequence[str]) -> int:
    """The app on ``argv``; the exit code (errors before a command starts are reported here)."""
    try:
        if not argv:  # no_args_is_help: the help, with click's usage exit code
            app(["--help"], standalone_mode=False)
            return EXIT_USAGE
        code = app(list(argv), standalone_mode=False)
    except (typer.Exit, SystemExit):
        raise
    except (Exception, KeyboardInterrupt) as exc:
        return report(exc)
    return code if isinstance(code, int) else 0


def main() -> None:
    """Console entry point: the fast allocator when available (see medgan3d.runtime), then the app."""
    from medgan3d.runtime import ensure_fast_allocator

    ensure_fast_allocator()
    sys.exit(run(sys.argv[1:]))
