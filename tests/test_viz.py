"""Figures carry what a reader needs: orientation letters on the right edges, a colour bar in the
data's units, row and image labels, and the kimg inside snapshot pictures. Checked on the drawn text objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medgan3d import viz
from medgan3d.config import load_preset
from medgan3d.data import make_brain_phantoms
from medgan3d.training.loop import TrainConfig, train
from medgan3d.training.observe import save_grid
from medgan3d.viz import IntensityWindow, image_grid_figure, slice_grid_figure, texts_of

HU = IntensityWindow(-250.0, 650.0, "HU", "window")


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The texts of every figure saved as PNG while the test runs."""
    texts: list[list[str]] = []
    save = viz._save_png

    def capture(fig, *args, **kwargs):  # type: ignore[no-untyped-def]
        texts.append(texts_of(fig))
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(viz, "_save_png", capture)
    return texts


def _edge_letters(ax) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The letter at each edge of a drawn slice, by where it sits in axes coordinates."""
    out = {}
    for t in ax.texts:
        x, y = t.get_position()
        edge = "left" if x < 0.1 else "right" if x > 0.9 else "top" if y > 0.9 else "bottom"
        out[edge] = t.get_text()
    return out


def test_orientation_letters_sit_on_the_anatomical_sides() -> None:
    d, h, w = np.meshgrid(np.arange(8), np.arange(10), np.arange(12), indexing="ij")
    # RAS [D, H, W]: bright towards superior (D), anterior (H) and the patient's right (W), one at a time
    volumes = [np.where(a > a.max() / 2, 1.0, -1.0) for a in (w, h, d)]
    fig = slice_grid_figure(volumes, window=HU)
    axes = np.asarray(fig.axes[:9]).reshape(3, 3)
    for ax, plane in zip(axes[0], ("axial", "coronal", "sagittal"), strict=True):
        assert (
            tuple(_edge_letters(ax)[e] for e in ("left", "right", "top", "bottom")) == viz.ORIENTATION[plane]
        )
    right = axes[0, 0].images[0].get_array()  # axial of the right-bright volume: bright at the R edge
    assert (
        right[:, -1].mean() > 0.9 and right[:, 0].mean() < -0.9 and _edge_letters(axes[0, 0])["right"] == "R"
    )
    anterior = axes[1, 0].images[0].get_array()  # axial of the anterior-bright volume: bright at the top (A)
    assert anterior[0].mean() > 0.9 and _edge_letters(axes[1, 0])["top"] == "A"
    superior = (
        axes[2, 1].images[0].get_array()
    )  # coronal of the superior-bright volume: bright at the top (S)
    assert superior[0].mean() > 0.9 and _edge_letters(axes[2, 1])["top"] == "S"
    assert "HU\nwindow -250 to 650" in texts_of(fig)


def test_slice_grid_honours_spacing_and_labels_rows() -> None:
    fig = slice_grid_figure([np.zeros((8, 8, 8))], spacing=(3.0, 1.0, 0.5), titles=["seed 4"], title="t")
    aspects = [ax.get_aspect() for ax in fig.axes[:3]]
    assert aspects == pytest.approx([1.0 / 0.5, 3.0 / 0.5, 3.0 / 1.0])
    assert {"seed 4", "t", "axial", "coronal", "sagittal", "model units\n-1 to 1"} <= set(texts_of(fig))


def test_2d_twin_grid_labels_every_image(drawn: list[list[str]], tmp_path: Path) -> None:
    fig = image_grid_figure(
        [np.zeros((8, 8))] * 3, labels=["seed 0", "seed 1", "seed 2"], window=HU, title="x"
    )
    texts = texts_of(fig)
    assert {"seed 0", "seed 1", "seed 2", "x (axial)"} <= set(texts)
    assert texts.count("A") == texts.count("P") == texts.count("L") == texts.count("R") == 3
    save_grid(np.zeros((2, 8, 8)), tmp_path / "fakes.png", title="generated (G_ema), kimg 1.5")
    (snapshot,) = drawn
    assert {"generated (G_ema), kimg 1.5 (axial)", "#0", "#1"} <= set(snapshot)


def test_training_snapshots_draw_their_kimg(drawn: list[list[str]], tmp_path: Path) -> None:
    data = tmp_path / "brain16"
    make_brain_phantoms(6, data, seed=0, shape=(16, 16, 16))
    cfg = TrainConfig(batch=4, batch_gpu=4, kimg=0.008, tick_kimg=0.004, snapshot_ticks=1, grid=2, seed=0)
    run = train(data, load_preset("tiny").model, cfg, outdir=tmp_path / "runs")
    # make_brain_phantoms prepares the set, and prepare draws its preview first: take the run's own figures
    (reals,) = [texts for texts in drawn if "real training items" in texts]
    snapshots = [texts for texts in drawn if any(t.startswith("generated (G_ema)") for t in texts)]
    assert {"real training items", "real 0", "real 1", "S", "I"} <= set(reals)
    assert any("a.u." in t for t in reals)
    kimgs = sorted(p.name for p in run.glob("fakes*.png"))
    assert kimgs == ["fakes000000004.png", "fakes000000008.png"]
    assert "generated (G_ema), kimg 0.004" in snapshots[0] and "generated (G_ema), kimg 0.008" in snapshots[1]
    assert {"seed 0", "seed 1"} <= set(snapshots[1])
