"""`medgan3d evaluate` end to end: a saved tiny generator, and a folder of NIfTI/npy volumes."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from medgan3d.cli.main import app
from medgan3d.config import MetricsConfig, from_dict, load_preset, to_dict
from medgan3d.data import Manifest, denormalize, write_nifti
from medgan3d.metrics import SCORE_KEYS
from medgan3d.metrics.evaluate import evaluation_stages

runner = CliRunner()


def _check_report(out) -> dict:
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    page = (out / "report.html").read_text(encoding="utf-8")
    images = re.findall(r"<img src='([^']+)'", page)
    assert {"real_slices.png", "generated_slices.png", "tsne.png", "fid.png"} <= set(images)
    for name in images:
        assert (out / name).is_file() and (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return metrics


def test_cli_scores_a_saved_generator(brain_root, tmp_path) -> None:
    gdir = tmp_path / "G"
    load_preset("tiny").model.build_generator().save_pretrained(gdir)
    out = tmp_path / "eval"
    args = [
        "evaluate",
        str(gdir),
        "--data",
        str(brain_root),
        "-n",
        "12",
        "-o",
        str(out),
        "--cache",
        str(tmp_path),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert f"report: {out / 'report.html'}" in res.output
    metrics = _check_report(out)
    assert set(SCORE_KEYS) <= set(metrics)
    prov = metrics["provenance"]
    assert (
        prov["num_fake"] == 12 and prov["resolution"] == [16, 16, 16] and prov["intensity_range"] == [-1, 1]
    )
    assert prov["extractors"]["3d"]["weights"] == "random, seed 0"
    assert prov["source"]["generator"] == str(gdir.resolve())
    _check_stage_lines(res.output, ["sampling 12 volumes", *evaluation_stages(MetricsConfig())])
    recorded = from_dict(MetricsConfig, prov["settings"], "metrics.json", "settings")
    assert recorded == MetricsConfig(cache=str(tmp_path))  # every other setting at its default


def test_the_options_default_to_the_evaluation_settings_defaults() -> None:
    """The defaults --help shows are MetricsConfig's (config.py holds them; the command imports lazily)."""
    command = typer.main.get_command(app).commands["evaluate"]  # type: ignore[attr-defined]
    shown = {p.name: p.default for p in command.params}
    defaults = to_dict(MetricsConfig())
    settings = [name for name in shown if name in defaults]
    assert len(settings) == 13, settings
    for name in settings:
        expected = ",".join(defaults[name]) if name == "metrics" else defaults[name]
        assert shown[name] == expected, name


def _check_stage_lines(output: str, stages: list[str]) -> None:
    """Off a terminal (the runner is not one) each stage is one plain line as it starts, in order, before the
    scores are printed."""
    lines = output.splitlines()
    found = [i for i, line in enumerate(lines) if line.startswith("evaluate [")]
    expected = [f"evaluate [{k}/{len(stages)}] {name} (" for k, name in enumerate(stages, 1)]
    assert [lines[i][: len(e)] for i, e in zip(found, expected, strict=False)] == expected, lines
    assert len(found) == len(stages) and found[-1] < lines.index(
        next(ln for ln in lines if ln.startswith("metrics:"))
    )


def test_cli_scores_a_folder_of_volumes(brain_root, heldout, tmp_path) -> None:
    manifest = Manifest.load(brain_root)
    fake = tmp_path / "fake"
    for i, vol in enumerate(heldout[:5]):  # scanner units at 2× size: through the dataset's preset
        big = np.kron(denormalize(vol[0].numpy(), manifest), np.ones((2, 2, 2), np.float32))
        write_nifti(fake / f"s{i}.nii.gz", big, spacing=(0.5, 0.5, 0.5))
    np.save(fake / "stack.npy", heldout[5:10].numpy())  # model space [-1, 1] at the dataset shape
    out = tmp_path / "eval"
    args = [
        "evaluate",
        "--fake",
        str(fake),
        "--data",
        str(brain_root),
        "-o",
        str(out),
        "--metrics",
        "fid,psnr",
        "--cache",
        str(tmp_path),
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    metrics = _check_report(out)
    assert metrics["provenance"]["num_fake"] == 10
    assert metrics["provenance"]["source"]["modes"] == ["model", "preset"]
    assert {"fid_ax", "fid_avg", "psnr"} <= set(metrics) and "fid_3d" not in metrics and "kid" not in metrics
    assert metrics["psnr"] > 15  # held-out phantoms resemble the real set


def test_cli_names_bad_files(brain_root, tmp_path) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    np.save(fake / "good.npy", np.random.default_rng(0).uniform(-1, 1, (16, 16, 16)).astype(np.float32))
    (fake / "broken.nii.gz").write_bytes(b"not a nifti")
    np.save(fake / "flat.npy", np.zeros((16, 16), np.float32))
    res = runner.invoke(
        app, ["evaluate", "--fake", str(fake), "--data", str(brain_root), "-o", str(tmp_path / "o")]
    )
    assert res.exit_code != 0
    message = res.output
    assert "broken.nii.gz" in message and "flat.npy" in message and "good.npy" not in message


@pytest.mark.parametrize("argv", [["--data", "X"], ["G", "--fake", "F", "--data", "X"]])
def test_cli_needs_exactly_one_source(argv) -> None:
    res = runner.invoke(app, ["evaluate", *argv])
    assert res.exit_code != 0 and "exactly one" in res.output
