"""`medgan3d` command line: one typer app, one module per command, lazy imports so `--help` is instant.

Every error ends in :func:`report`: one line ``error: <message>`` on stderr and one exit code (the table is
``EPILOG``; docs/reliability.md, "Exit codes and error messages"). Commands reach it through
:func:`medgan3d.cli.command`; :func:`run` catches what happens before a command starts (parsing).
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

import medgan3d
from medgan3d.cli import demo, info, prepare
from medgan3d.cli import evaluate as evaluate_cmd
from medgan3d.cli import inflate as inflate_cmd
from medgan3d.cli import latent as latent_cmd
from medgan3d.cli import project as project_cmd
from medgan3d.cli import train as train_cmd
from medgan3d.errors import EXIT_FAILURE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, MedganError

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
)
app.command("info")(info.info)
app.command("demo")(demo.demo)
app.command("prepare")(prepare.prepare)
app.command("train")(train_cmd.train)
app.command("pretrain")(train_cmd.pretrain)
app.command("generate")(train_cmd.generate)
app.command("inflate")(inflate_cmd.inflate)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("project")(project_cmd.project)
app.command("mix")(latent_cmd.mix)
app.command("interpolate")(latent_cmd.interpolate)

_PACKAGE = Path(medgan3d.__file__).resolve().parent


def guarded(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a command; any error becomes :func:`report`'s line and exit code."""
    try:
        return fn(*args, **kwargs)
    except (typer.Exit, SystemExit):  # a command's own exit code (also a nested command's, in demo)
        raise
    except (Exception, KeyboardInterrupt) as exc:
        raise typer.Exit(report(exc)) from None


def report(exc: BaseException) -> int:
    """Print the one ``error:`` line for ``exc`` (after its traceback with MEDGAN3D_DEBUG=1); the exit code."""
    code, message = _classify(exc)
    if os.environ.get("MEDGAN3D_DEBUG", "") not in ("", "0") and not isinstance(exc, typer.TyperException):
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    typer.secho(f"error: {one_line(message)}", err=True, fg="red")
    return code


def one_line(message: str) -> str:
    """A multi-line message (a list of bad files) as one line: ``head: a; b; c``."""
    head, *rest = [line.strip() for line in message.splitlines() if line.strip()] or [""]
    if not rest:
        return head
    return head + (" " if head.endswith(":") else "; ") + "; ".join(rest)


def _classify(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, typer.Abort):
        return EXIT_FAILURE, "aborted"
    if isinstance(exc, typer.TyperException):  # click's usage errors: bad option, missing argument, range
        return exc.exit_code, exc.format_message()
    if isinstance(exc, MedganError):
        return exc.exit_code, str(exc) or type(exc).__name__
    if _expected(exc):
        return EXIT_FAILURE, _message(exc)
    hint = "set MEDGAN3D_DEBUG=1 for the traceback"
    return EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {_message(exc)} ({hint})"


def _expected(exc: BaseException) -> bool:
    """Errors that describe the user's files or values, not a bug: ValueError and OSError (what library
    code raises for bad input), error classes of this package, a RuntimeError raised by this package's
    code, and running out of memory."""
    if isinstance(exc, ValueError | OSError) or type(exc).__module__.startswith("medgan3d."):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch's, a RuntimeError
        return True
    return isinstance(exc, RuntimeError) and _raised_in_package(exc)


def _raised_in_package(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        target = f" -> {exc.filename2}" if exc.filename2 is not None else ""
        return f"{exc.filename}{target}: {exc.strerror}"
    return str(exc) or type(exc).__name__


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
