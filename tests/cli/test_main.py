"""The command line's layout: one module per command, no import cycle between its modules."""

from __future__ import annotations

import ast
from pathlib import Path

import typer

import medgan3d.cli
from medgan3d.cli.main import app

CLI = Path(medgan3d.cli.__file__).parent


def _imports(path: Path) -> set[str]:
    """The medgan3d.cli modules a file imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("medgan3d.cli"):
            if node.module == "medgan3d.cli":
                found |= {f"medgan3d.cli.{a.name}" for a in node.names if (CLI / f"{a.name}.py").is_file()}
                found |= {"medgan3d.cli" for a in node.names if not (CLI / f"{a.name}.py").is_file()}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("medgan3d.cli")}
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in CLI.glob("*.py"):
        name = "medgan3d.cli" if path.stem == "__init__" else f"medgan3d.cli.{path.stem}"
        graph[name] = _imports(path) - {name}
    return graph


def test_no_import_cycle_between_cli_modules() -> None:
    graph = _graph()
    assert not any("medgan3d.cli.main" in deps for deps in graph.values())  # the app is imported by no one
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import cycle: {' -> '.join((*path[path.index(node) :], node))}"
        if node in done:
            return
        for dep in graph.get(node, ()):
            visit(dep, (*path, node))
        done.add(node)

    for module in graph:
        visit(module, ())


def test_each_command_lives_in_its_own_module() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.main.TyperGroup)
    for name, cmd in group.commands.items():
        module = cmd.callback.__module__ if cmd.callback else ""
        assert module.startswith("medgan3d.cli."), name
        expected = "latent" if name in ("mix", "interpolate") else name  # mix and interpolate: latent walks
        assert module == f"medgan3d.cli.{expected}", name
