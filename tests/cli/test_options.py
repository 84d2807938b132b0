"""One vocabulary across the commands, read from the app itself: every command × option, its flags, help and
default, as typer/click build them. A new option that breaks a rule fails here with its command and flag."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from medgan3d.cli.main import app

READ_ONLY = {"info"}  # commands that write nothing; every other one takes -o/--out


@dataclass(frozen=True)
class Row:
    command: str
    name: str
    kind: str  # option | argument
    opts: tuple[str, ...]
    secondary: tuple[str, ...]
    flag: bool
    required: bool
    default: object
    help: str


def cli_table() -> list[Row]:
    """Every visible parameter of every command (``--help`` left out)."""
    group = typer.main.get_command(app)
    assert isinstance(group, typer.main.TyperGroup)
    rows = []
    for name, cmd in group.commands.items():
        for p in cmd.params:
            if getattr(p, "hidden", False):
                continue
            rows.append(
                Row(
                    name,
                    p.name or "",
                    p.param_type_name,
                    tuple(p.opts),
                    tuple(p.secondary_opts),
                    bool(getattr(p, "is_flag", False)),
                    p.required,
                    p.default,
                    getattr(p, "help", None) or "",
                )
            )
    return rows


TABLE = cli_table()
OPTIONS = [r for r in TABLE if r.kind == "option"]


def _id(row: Row) -> str:
    return f"{row.command}:{row.name}"


def _shorts(row: Row) -> list[str]:
    return [o for o in (*row.opts, *row.secondary) if not o.startswith("--")]


def _long(row: Row) -> str:
    return next(o for o in row.opts if o.startswith("--"))


def test_the_table_covers_every_command() -> None:
    commands = {r.command for r in TABLE}
    assert {"prepare", "train", "pretrain", "generate", "evaluate", "inflate", "demo", "info"} <= commands
    assert len(OPTIONS) > 100


@pytest.mark.parametrize("row", TABLE, ids=_id)
def test_every_parameter_has_help(row: Row) -> None:
    assert row.help.strip(), f"{row.command} {row.opts}: no help text"


@pytest.mark.parametrize("row", TABLE, ids=_id)
def test_help_text_survives_rich_markup(row: Row) -> None:
    """typer renders help as rich markup: ``E[sign(x)]`` would print as ``E`` (the bracket read as a style)."""
    assert Text.from_markup(row.help).plain == row.help, (
        f"{row.command} {row.opts}: brackets eaten by rich markup"
    )


@pytest.mark.parametrize("command", sorted({r.command for r in TABLE}))
def test_command_help_survives_rich_markup(command: str) -> None:
    text = typer.main.get_command(app).commands[command].help or ""
    assert Text.from_markup(text).plain == text, f"{command}: brackets in its docstring eaten by rich markup"


@pytest.mark.parametrize("row", OPTIONS, ids=_id)
def test_every_option_shows_its_default(row: Row) -> None:
    """click prints ``[default: X]`` for a value default (and ``[required]``); an option whose default is
    decided later (None: the preset's, the dataset's) says so in its help text."""
    shown = row.default is not None and (not row.flag or bool(row.secondary))
    assert row.required or shown or "default" in row.help.lower(), (
        f"{row.command} {_long(row)}: default not shown"
    )


@pytest.mark.parametrize("row", [r for r in OPTIONS if r.flag], ids=_id)
def test_boolean_flags_come_in_pairs(row: Row) -> None:
    assert row.secondary and row.secondary[0].startswith("--"), f"{row.command} {_long(row)}: give --x/--no-x"


@pytest.mark.parametrize("command", sorted({r.command for r in TABLE}))
def test_help_renders_no_value_for_flags(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    for row in (r for r in OPTIONS if r.command == command and r.flag):
        assert row.opts[0] in result.output and row.secondary[0] in result.output


def test_every_option_has_a_long_name() -> None:
    missing = [f"{r.command} {r.opts}" for r in OPTIONS if not any(o.startswith("--") for o in r.opts)]
    assert not missing


def test_a_short_flag_means_one_thing_everywhere() -> None:
    meaning: dict[str, set[str]] = {}
    for row in OPTIONS:
        for short in _shorts(row):
            meaning.setdefault(short, set()).add(_long(row))
    conflicts = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert not conflicts
    assert meaning["-o"] == {"--out"} and meaning["-n"] == {"--num"} and meaning["-c"] == {"--config"}


def test_a_long_name_has_the_same_short_flag_everywhere() -> None:
    shorts: dict[str, set[tuple[str, ...]]] = {}
    for row in OPTIONS:
        shorts.setdefault(_long(row), set()).add(tuple(_shorts(row)))
    assert {long: s for long, s in shorts.items() if len(s) > 1} == {}


@pytest.mark.parametrize("command", sorted({r.command for r in TABLE} - READ_ONLY))
def test_commands_that_write_take_out(command: str) -> None:
    outs = [r for r in OPTIONS if r.command == command and "--out" in r.opts]
    assert outs and "-o" in outs[0].opts, f"{command}: no -o/--out"


def test_counts_are_num() -> None:
    """Counts of things made or scored are -n/--num; the old names are hidden aliases."""
    assert not [r for r in OPTIONS if {"--samples", "--subjects"} & set(r.opts)]
    for command in ("prepare", "generate", "evaluate", "demo"):
        assert any("--num" in r.opts for r in OPTIONS if r.command == command), command


def test_old_spellings_still_work(tmp_path) -> None:  # type: ignore[no-untyped-def]
    group = typer.main.get_command(app)
    demo = {o for p in group.commands["demo"].params for o in p.opts}
    assert {"--subjects", "--samples", "--num", "--num-eval"} <= demo
