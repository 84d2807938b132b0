"""Checks the commands run before they compute or create anything, and the one-line warning."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from medgan3d.errors import MedganError, UsageError


def warn(message: str) -> None:
    typer.secho(f"warning: {message}", err=True, fg="yellow")


def explicit_options(ctx: typer.Context) -> list[str]:
    """The options given on the command line (or by environment), as their long flags, in declared order."""
    sources = {"COMMANDLINE", "ENVIRONMENT"}
    given = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name) if param.name else None
        if source is not None and source.name in sources:
            given.append(max(param.opts, key=len))
    return given


def check_out_folder(path: Path, flag: str = "--out") -> None:
    """Refuse an output folder that cannot become one (a file, under a file, not writable)."""
    existing = next(p for p in (path, *path.parents) if p.exists() or p.is_symlink())
    if not existing.exists():
        raise UsageError(f"{flag} {path}: {existing} is a broken symbolic link")
    if not existing.is_dir():
        where = "is a file" if existing == path else f"{existing} is a file"
        raise UsageError(f"{flag} {path}: {where}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write in {existing} (permission denied)")


def check_prepared(data: Path, flag: str = "--data") -> None:
    """Refuse a folder that ``medgan3d prepare`` did not write (the commonest first mistake: raw scans)."""
    from medgan3d.data.manifest import MANIFEST_NAME

    if not data.exists():
        raise MedganError(f"{flag} {data}: no such folder")
    if not data.is_dir():
        raise MedganError(f"{flag} {data}: not a folder")
    if not (data / MANIFEST_NAME).is_file():
        raise MedganError(
            f"{data}: not a prepared dataset (no {MANIFEST_NAME}); run medgan3d prepare first "
            f"(medgan3d prepare {data} -o DIR), then pass {flag} DIR"
        )


def check_device(device: str | None, flag: str = "--device") -> None:
    """``cpu``, ``cuda`` or ``cuda:N``, and CUDA only where torch can use it."""
    if device is None or device == "cpu":
        return
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise UsageError(f"{flag} {device!r}: expected cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise UsageError(f"{flag} {device}: {why} (torch {torch.__version__}); use --device cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise UsageError(f"{flag} {device}: only {torch.cuda.device_count()} CUDA device(s) visible")
