"""A newcomer's first run with the defaults: `prepare DIR` then `train` fit each other, train's default length
is the preset's, and tick 0 is printed at once, before the first tick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import medgan3d
from medgan3d.cli.main import app
from medgan3d.cli.options import DEFAULT_CONFIG
from medgan3d.config import load_preset
from medgan3d.data import load_manifest, make_heart_phantoms
from medgan3d.training.observe import RunLogger

runner = CliRunner()
CONFIGS = Path(medgan3d.__file__).parent / "configs"


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of raw CT scans (the heart phantom's, in HU), as a user's folder would be."""
    root = tmp_path_factory.mktemp("first-run")
    make_heart_phantoms(6, root / "unused", shape=(16, 16, 16), inplane=32, raw_dir=root / "scans")
    return root / "scans"


def test_prepare_then_train_with_the_defaults(scans: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    res = runner.invoke(app, ["prepare", str(scans), "-o", str(data)])
    assert res.exit_code == 0, res.output
    model = load_preset(DEFAULT_CONFIG).model
    assert load_manifest(data)["shape"] == list(model.output_shape) == [1, 16, 16, 16]
    events: list[tuple[str, Any]] = []
    started, tick = RunLogger.started, RunLogger.tick
    monkeypatch.setattr(
        RunLogger, "started", lambda self, *a: (events.append(("tick 0", a)), started(self, *a))
    )
    monkeypatch.setattr(
        RunLogger, "tick", lambda self, r: (events.append(("tick", r["tick"])), tick(self, r))
    )
    runs = tmp_path / "runs"
    # the defaults, but a tiny budget (the argument) and two ticks
    res = runner.invoke(
        app, ["train", "--data", str(data), "-o", str(runs), "--kimg", "0.016", "--tick", "0.008"]
    )
    assert res.exit_code == 0, res.output
    assert events == [("tick 0", events[0][1]), ("tick", 1), ("tick", 2)]
    lines = res.output.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("tick 0 "))
    assert first < next(i for i, line in enumerate(lines) if line.startswith("tick 1 "))
    assert "first iteration" in lines[first] and "to kimg 0.016" in lines[first]
    (run,) = runs.iterdir()
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["tick"] for r in rows] == [1, 2]  # tick 0 is the console's start line, not a stats row
    assert list((run / "checkpoints").iterdir())


def test_phantoms_default_to_the_default_presets_shape(tmp_path: Path) -> None:
    res = runner.invoke(app, ["prepare", "brain-phantom", "-n", "4", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert load_manifest(tmp_path / "b")["shape"] == list(load_preset(DEFAULT_CONFIG).model.output_shape)


def test_prepare_takes_the_shape_of_the_preset_it_prepares_for(scans: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["prepare", str(scans), "-o", str(tmp_path / "d"), "-c", "wgan-gp-tiny"])
    assert res.exit_code == 0, res.output
    assert load_manifest(tmp_path / "d")["shape"] == [1, 16, 16, 16]
    # a preprocessing preset named without -c keeps its own shape (the paper's), as the docs' commands expect
    res = runner.invoke(app, ["prepare", str(scans), "-o", str(tmp_path / "c"), "--preset", "coca"])
    assert res.exit_code == 0, res.output
    assert load_manifest(tmp_path / "c")["shape"] == [1, 32, 64, 64]
    res = runner.invoke(
        app, ["prepare", str(scans), "-o", str(tmp_path / "a"), "--preset", "adni", "-c", "hagan-32"]
    )
    assert res.exit_code == 0, res.output
    assert load_manifest(tmp_path / "a")["shape"] == [1, 32, 32, 32]
    bad = runner.invoke(app, ["prepare", str(scans), "-o", str(tmp_path / "e"), "-c", "tiny-2d"])
    assert bad.exit_code == 2 and "2D preset" in bad.output and not (tmp_path / "e").exists()


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_train(data, model, cfg, **kw):  # type: ignore[no-untyped-def]
        seen.update(cfg=cfg)
        return Path("run")

    monkeypatch.setattr("medgan3d.training.loop.train", fake_train)
    return seen


def test_default_length_is_the_presets(scans: Path, tmp_path: Path, captured: dict[str, Any]) -> None:
    data = tmp_path / "data"
    assert runner.invoke(app, ["prepare", str(scans), "-o", str(data)]).exit_code == 0
    assert runner.invoke(app, ["train", "--data", str(data), "-o", str(tmp_path)]).exit_code == 0
    tiny = captured["cfg"].kimg
    written = yaml.safe_load((CONFIGS / f"{DEFAULT_CONFIG}.yaml").read_text(encoding="utf-8"))["train"][
        "kimg"
    ]
    assert tiny == written and tiny < 100  # the preset file's length, not the paper's 5000
    data64 = tmp_path / "data64"
    assert runner.invoke(app, ["prepare", str(scans), "-o", str(data64), "-c", "coca-ss"]).exit_code == 0
    assert (
        runner.invoke(app, ["train", "-d", str(data64), "-c", "coca-ss", "-o", str(tmp_path)]).exit_code == 0
    )
    assert captured["cfg"].kimg == 5000.0  # the paper presets keep Liu et al.'s 5,000 kimg
    assert f"tiny {tiny:g}" in runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).output


def test_weights_flags_set_the_snapshot_scores_settings_over_the_presets(
    tmp_path: Path, captured: dict[str, Any]
) -> None:
    from medgan3d.config import MetricsConfig
    from medgan3d.data import make_brain_phantoms

    data = tmp_path / "data"
    make_brain_phantoms(4, data, seed=0, shape=(16, 16, 16))
    preset = yaml.safe_load((CONFIGS / f"{DEFAULT_CONFIG}.yaml").read_text(encoding="utf-8"))
    preset["train"]["metrics_settings"] = {"bootstrap": 0, "weights_3d": "preset-3d.pth"}
    path = tmp_path / "preset.yaml"
    path.write_text(yaml.safe_dump(preset), encoding="utf-8")
    args = ["train", "-d", str(data), "-c", str(path), "-o", str(tmp_path / "runs"), "-m", "fid"]
    assert runner.invoke(app, [*args, "--weights-2d", "inc.pth"]).exit_code == 0
    assert captured["cfg"].metrics_settings == MetricsConfig(
        weights_2d="inc.pth", weights_3d="preset-3d.pth", bootstrap=0
    )
    assert runner.invoke(app, args).exit_code == 0  # no flag: the preset's settings as written
    assert captured["cfg"].metrics_settings == MetricsConfig(weights_3d="preset-3d.pth", bootstrap=0)
