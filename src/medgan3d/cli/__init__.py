"""Thin typer commands over library functions; heavy imports happen inside each command."""
