"""Labels of a prepared dataset: `prepare --labels` matches a CSV to the scans (classes or float values),
refuses a bad CSV naming its row, and :class:`LabelSpec` encodes labels for a conditional model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from medgan3d.cli.main import app
from medgan3d.data import prepare_dataset
from medgan3d.data.labels import LabelError, LabelSpec, read_labels_csv
from medgan3d.data.preprocess import get_preset

runner = CliRunner()


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.npy", "b.npy", "sub/c.npy"):
        np.save(folder / name, rng.normal(size=(8, 8, 8)).astype(np.float32))
    return folder


def _prepare(scans: Path, csv_text: str, kind: str = "auto") -> dict:
    csv = scans.parent / "labels.csv"
    csv.write_text(csv_text, encoding="utf-8")
    prepare_dataset(
        scans,
        scans.parent / "out",
        get_preset("generic", shape=(8, 8, 8)),
        labels=csv,
        label_kind=kind,
        val_fraction=0.0,
    )
    return json.loads((scans.parent / "out" / "dataset.json").read_text(encoding="utf-8"))


def test_prepare_stores_labels_matched_by_path_file_name_or_stem(scans: Path) -> None:
    manifest = _prepare(scans, "file,label\na.npy,1\nb,0\nc.npy,1\n")
    assert {it["source"]: it["label"] for it in manifest["items"]} == {"a.npy": 1, "b.npy": 0, "sub/c.npy": 1}
    assert manifest["labels"]["kind"] == "class" and manifest["labels"]["classes"] == [0, 1]
    assert manifest["labels"]["counts"]["train"] == {"0": 1, "1": 2}
    assert (scans.parent / "out" / "labels.csv").read_text(encoding="utf-8").startswith("file,label")


def test_prepare_stores_float_labels_as_values(scans: Path) -> None:
    manifest = _prepare(scans, "a.npy,0.5\nb.npy,2\nsub/c.npy,-1.25\n")
    assert manifest["labels"] == {"kind": "value", "range": [-1.25, 2.0], "csv": "labels.csv"}
    assert [it["label"] for it in manifest["items"]] == [0.5, 2.0, -1.25]


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        (
            "a.npy,1\nb.npy,0\nsub/c.npy,1\nd.npy,0\n",
            "auto",
            r"labels\.csv, row 4: 'd\.npy' is not one of the 3 scans",
        ),
        ("a.npy,1\nb.npy,0\n", "auto", r"labels\.csv: no label for scan 'sub/c\.npy'"),
        (
            "a.npy,1\nb.npy,sick\nsub/c.npy,1\n",
            "auto",
            r"row 2: label 'sick' of 'b\.npy' is not an integer class",
        ),
        (
            "a.npy,1\nb.npy,0\na.npy,1\nsub/c.npy,0\n",
            "auto",
            r"row 3: 'a\.npy' is labelled twice \(first at row 1\)",
        ),
        ("a.npy,1,x\n", "auto", r"row 1: expected 2 columns"),
        (
            "a.npy,1\nb.npy,0.5\nsub/c.npy,1\n",
            "class",
            r"row 2: label 0\.5 of 'b\.npy' is not an integer class",
        ),
        ("a.npy,1\nb.npy,nan\nsub/c.npy,1\n", "auto", r"row 2: label 'nan'"),
    ],
)
def test_bad_label_csvs_are_refused_naming_the_csv_and_row(
    scans: Path, text: str, kind: str, message: str
) -> None:
    with pytest.raises(LabelError, match=message):
        _prepare(scans, text, kind)
    assert not (scans.parent / "out").exists()  # nothing half-written


def test_prepare_cli_reports_a_bad_csv_in_one_line(scans: Path) -> None:
    csv = scans.parent / "labels.csv"
    csv.write_text("a.npy,1\nzzz.npy,0\n", encoding="utf-8")
    res = runner.invoke(
        app,
        [
            "prepare",
            str(scans),
            "--preset",
            "generic",
            "--shape",
            "8",
            "-o",
            str(scans.parent / "out"),
            "--labels",
            str(csv),
        ],
    )
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error")]
    assert errors == [f"error: {csv}, row 2: 'zzz.npy' is not one of the 3 scans found"]
    assert "Traceback" not in res.output


def test_read_labels_csv_skips_header_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("# classes: 0 healthy\nfilename,label\n\nx.nii.gz, 3\n", encoding="utf-8")
    assert read_labels_csv(path) == {"x.nii.gz": (4, 3)}


def test_label_spec_encodes_one_hot_and_refuses_unknown_classes() -> None:
    spec = LabelSpec("class", (2, 7))
    torch.testing.assert_close(spec.encode([7, 2, 7]), torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(LabelError, match="--label 3: not a class of this model \\(it knows classes 2, 7\\)"):
        spec.check(3)
    assert LabelSpec.from_dict(spec.to_dict()) == spec
    value = LabelSpec("value", value_range=(1.0, 3.0))
    torch.testing.assert_close(value.encode([1.5]), torch.tensor([[1.5]]))
    assert value.grid(3) == [1.0, 2.0, 3.0]
