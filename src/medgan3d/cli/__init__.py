"""Thin typer commands over library functions; heavy imports happen inside each command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def command(fn: F) -> F:
    """Route a command's errors to the one handler, :func:`medgan3d.cli.main.guarded`.

    Imported when the command runs, not here: cli.main imports every command module."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from medgan3d.cli.main import guarded

        return guarded(fn, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
