"""Console output that stays greppable: no hard wrapping of messages when stdout is not a terminal.

Rich wraps text at 80 columns when it writes to a pipe or a file, which splits paths and reasons across
lines in logs, Slurm output and CI (and made a test pass or fail by the length of its temp path). Off a
terminal every console here prints one logical line per message; on a terminal rich wraps as usual.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


def make_console(stderr: bool = False) -> Console:
    """A rich console that soft-wraps (never inserts line breaks) when it is not writing to a terminal."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def print_error(console: Console, message: object) -> None:
    """``error: <message>`` with the message taken literally (a path like ``scan[1].nii`` is not markup)."""
    console.print(f"[red]error:[/red] {escape(str(message))}")


class Stages:
    """Progress through a few long steps (``stages(name, done, total)`` as each one starts): a rich bar with the
    step's name on a terminal; off a terminal (logs, Slurm, CI), one plain line per step with the elapsed time."""

    def __init__(self, console: Console, label: str) -> None:
        self.console, self.label = console, label
        self.start = time.perf_counter()
        self.progress: Progress | None = None
        self.task: TaskID | None = None
        if console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> Stages:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, name: str, done: int, total: int) -> None:
        if self.progress is None:
            elapsed = time.perf_counter() - self.start
            self.console.print(f"{self.label} [{done + 1}/{total}] {name} ({elapsed:.0f} s)", markup=False)
            return
        if self.task is None:
            self.task = self.progress.add_task(self.label, total=total)
        self.progress.update(self.task, completed=done, total=total, description=f"{self.label}: {name}")
