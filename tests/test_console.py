"""Messages are never hard-wrapped off a terminal (a long path was split mid-word in logs/CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medgan3d.console import make_console, print_error


def test_a_console_off_a_terminal_prints_one_line_per_message(capsys) -> None:  # type: ignore[no-untyped-def]
    message = "/" + "/".join(["a-rather-long-folder-name"] * 12) + "/ckpt-000001000 [1]"
    print_error(make_console(), message)
    out = capsys.readouterr().out
    assert out == f"error: {message}\n"  # one line, brackets kept literally (not rich markup)


def test_prepare_error_with_a_long_path_stays_on_one_line(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-long-folder-name-for-wrapping"] * 6, "scans")
    deep.mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-m", "medgan3d", "prepare", str(deep), "-o", str(tmp_path / "out")],
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        env={"COLUMNS": "", "PATH": "/usr/bin:/bin", "MEDGAN3D_ALLOCATOR": "system"},
    )
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(deep) in lines[0], proc.stderr


def test_stages_are_a_bar_on_a_terminal_and_plain_lines_off_it() -> None:
    import io

    from rich.console import Console

    from medgan3d.console import Stages

    for terminal in (False, True):
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=terminal, width=100)
        with Stages(console, "evaluate") as stages:
            assert (stages.progress is not None) == terminal
            for i, name in enumerate(("sampling", "features", "psnr")):
                stages(name, i, 3)
            if terminal:
                task = stages.progress.tasks[0]
                assert (task.completed, task.total, task.description) == (2, 3, "evaluate: psnr")
        lines = [line for line in buffer.getvalue().splitlines() if line.startswith("evaluate [")]
        expected = ["evaluate [1/3] sampling", "evaluate [2/3] features", "evaluate [3/3] psnr"]
        assert [line.rsplit(" (", 1)[0] for line in lines] == ([] if terminal else expected)
