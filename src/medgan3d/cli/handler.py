"""The one error handler of the command line: any exception becomes one line ``error: <message>`` on stderr
and one exit code (the table is :data:`medgan3d.cli.main.EPILOG`; docs/reliability.md, "Exit codes and error
messages"). Commands reach it through :func:`command`; :func:`medgan3d.cli.main.run` uses :func:`report` for
what fails before a command starts (parsing). Imports nothing of the commands, so every module can use it.
"""

from __future__ import annotations

import functools
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

import medgan3d
from medgan3d.errors import EXIT_FAILURE, EXIT_INTERNAL, EXIT_INTERRUPTED, MedganError

F = TypeVar("F", bound=Callable[..., Any])


def command(fn: F) -> F:
    """Route a command's errors to :func:`guarded`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return guarded(fn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]  # functools.wraps keeps the signature F promises


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
