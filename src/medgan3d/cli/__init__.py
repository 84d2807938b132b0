"""Thin typer commands over library functions, one module per command; heavy imports happen inside each
command. Shared option definitions are in :mod:`medgan3d.cli.options`, the error handler in
:mod:`medgan3d.cli.handler`, the app in :mod:`medgan3d.cli.main`."""

from __future__ import annotations

from medgan3d.cli.handler import command

__all__ = ["command"]
