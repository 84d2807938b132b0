"""Console output that stays greppable: no hard wrapping of messages when stdout is not a terminal.

Rich wraps text at 80 columns when it writes to a pipe or a file, which splits paths and reasons across
lines in logs, Slurm output and CI (and made a test pass or fail by the length of its temp path). Off a
terminal every console here prints one logical line per message; on a terminal rich wraps as usual.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape


def make_console(stderr: bool = False) -> Console:
    """A rich console that soft-wraps (never inserts line breaks) when it is not writing to a terminal."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def print_error(console: Console, message: object) -> None:
    """``error: <message>`` with the message taken literally (a path like ``scan[1].nii`` is not markup)."""
    console.print(f"[red]error:[/red] {escape(str(message))}")
