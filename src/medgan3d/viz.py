"""Pictures of volumes: centre-slice grids with orientation letters, an intensity colour bar and titles.

Volumes are ``[D, H, W]`` in RAS order (docs/data.md: D inferior→superior, H posterior→anterior, W
left→right); slices are drawn with rows flipped so that superior (coronal, sagittal) or anterior (axial) is up,
and the patient's left on the left (neurological convention). Every edge carries its anatomical letter.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medgan3d.fs import atomic_write

if TYPE_CHECKING:
    from medgan3d.data.manifest import Manifest

PLANES = ("axial", "coronal", "sagittal")
# Letters at the (left, right, top, bottom) edges of each plane as drawn.
ORIENTATION = {
    "axial": ("L", "R", "A", "P"),
    "coronal": ("L", "R", "S", "I"),
    "sagittal": ("P", "A", "S", "I"),
}


@dataclass(frozen=True)
class IntensityWindow:
    """What the model range [-1, 1] stands for in the data's units: ``lo`` ↔ -1 and ``hi`` ↔ +1.

    ``kind``: ``"window"`` (a fixed window the scans were clipped to, e.g. HU for CT presets), ``"percentile"``
    (each scan was clipped to its own percentile range; ``lo``/``hi`` are the dataset's medians, docs/data.md),
    or ``"model"`` (no manifest: the model's own units).
    """

    lo: float = -1.0
    hi: float = 1.0
    unit: str = "model units"
    kind: str = "model"

    @classmethod
    def of_intensity(cls, info: Mapping[str, Any] | None) -> IntensityWindow:
        """From a manifest's ``intensity`` block (``kind``, ``lo``, ``hi``, ``unit``); None: model units."""
        if not info:
            return cls()
        unit = str(info.get("unit") or "a.u.")
        return cls(float(info["lo"]), float(info["hi"]), unit, str(info.get("kind", "window")))

    @classmethod
    def of_manifest(cls, manifest: Manifest | None) -> IntensityWindow:
        """The window of a dataset's manifest; None: model units."""
        return cls() if manifest is None else cls.of_intensity(manifest.intensity.to_dict())

    def to_units(self, values: Any) -> Any:
        """Model intensities to data units (the inverse of preprocessing's linear map; numpy or torch)."""
        return (values + 1.0) * ((self.hi - self.lo) / 2.0) + self.lo

    def describe(self, sep: str = ", ") -> str:
        """``HU, window -250 to 650``; ``a.u., per-scan percentile window (dataset median 4.206 to 850.4)``."""
        span = f"{self.lo:.4g} to {self.hi:.4g}"
        if self.kind == "percentile":
            return f"{self.unit}{sep}per-scan percentile window{sep}(dataset median {span})"
        return f"{self.unit}{sep}{span}" if self.kind == "model" else f"{self.unit}{sep}window {span}"


MODEL_WINDOW = IntensityWindow()


def centre_slices(volume: np.ndarray) -> list[np.ndarray]:
    """Centre slices of a ``[D, H, W]`` volume (D axial): axial ``[H, W]``, coronal ``[D, W]``, sagittal ``[D, H]``."""
    d, h, w = volume.shape
    return [volume[d // 2], volume[:, h // 2, :], volume[:, :, w // 2]]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _aspects(spacing: Sequence[float]) -> list[float]:
    """Pixel aspect (row mm / column mm) of the axial, coronal and sagittal slices."""
    sd, sh, sw = (float(s) for s in spacing)
    return [sh / sw, sd / sw, sd / sh]


def _orientation(ax: Any, plane: str) -> None:
    """The anatomical letter at each edge of a drawn slice."""
    left, right, top, bottom = ORIENTATION[plane]
    style = {"transform": ax.transAxes, "color": "#ffd23f", "fontsize": 7, "fontweight": "bold"}
    ax.text(0.03, 0.5, left, ha="left", va="center", **style)
    ax.text(0.97, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.97, top, ha="center", va="top", **style)
    ax.text(0.5, 0.03, bottom, ha="center", va="bottom", **style)


def _colorbar(fig: Any, axes: Any, window: IntensityWindow, vrange: tuple[float, float]) -> None:
    """A grey colour bar in the data's units over the displayed range (``vrange`` in model units)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    lo, hi = (float(window.to_units(v)) for v in vrange)
    bar = fig.colorbar(ScalarMappable(Normalize(lo, hi), cmap="gray"), ax=axes, shrink=0.8, pad=0.02)
    bar.set_label(window.describe("\n"), fontsize=6)
    bar.ax.tick_params(labelsize=6)


def _show(ax: Any, img: np.ndarray, plane: str, vrange: tuple[float, float], aspect: float = 1.0) -> None:
    # Flip rows so that superior/anterior is up for the RAS-ordered [D, H, W] layout.
    ax.imshow(img[::-1], cmap="gray", vmin=vrange[0], vmax=vrange[1], aspect=aspect)
    ax.set_xticks([])
    ax.set_yticks([])
    _orientation(ax, plane)


def texts_of(fig: Any) -> list[str]:
    """Every non-empty text drawn on a figure (titles, labels, letters, colour-bar label), for checks."""
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def slice_grid_figure(
    volumes: Sequence[np.ndarray],
    vrange: tuple[float, float] = (-1.0, 1.0),
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    titles: Sequence[str] | None = None,
    window: IntensityWindow = MODEL_WINDOW,
    title: str = "",
) -> Any:
    """One row per ``[D, H, W]`` volume with its three centre slices at their mm aspect, orientation letters,
    row ``titles``, a figure ``title`` and a colour bar labelled with ``window``."""
    plt = _plt()
    fig, axes = plt.subplots(
        len(volumes), 3, figsize=(8.4, 2.6 * len(volumes) + 0.5), squeeze=False, layout="constrained"
    )
    for row, vol in enumerate(volumes):
        slices = centre_slices(np.asarray(vol, dtype=np.float32))
        for col, (img, aspect) in enumerate(zip(slices, _aspects(spacing), strict=True)):
            _show(axes[row, col], img, PLANES[col], vrange, aspect)
            if row == 0:
                axes[row, col].set_title(PLANES[col])
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row])
    _colorbar(fig, axes, window, vrange)
    if title:
        fig.suptitle(title)
    return fig


def save_slice_grid(
    volumes: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    vrange: tuple[float, float] = (-1.0, 1.0),
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    titles: Sequence[str] | None = None,
    window: IntensityWindow = MODEL_WINDOW,
    title: str = "",
) -> Path:
    """PNG of :func:`slice_grid_figure`."""
    return _save_png(slice_grid_figure(volumes, vrange, spacing, titles, window, title), path, title)


def image_grid_figure(
    images: Sequence[np.ndarray],
    columns: int = 8,
    vrange: tuple[float, float] = (-1.0, 1.0),
    labels: Sequence[str] | None = None,
    window: IntensityWindow = MODEL_WINDOW,
    title: str = "",
) -> Any:
    """A grid of axial 2D images ``[H, W]`` (2D-twin samples, real slices), each with its label and orientation
    letters, rows flipped like the volume grid, one colour bar."""
    plt = _plt()
    rows = (len(images) + columns - 1) // columns
    cols = min(columns, len(images))
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.6 * cols + 0.9, 1.75 * rows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, img) in enumerate(zip(axes.flat, images, strict=False)):
        _show(ax, np.asarray(img, dtype=np.float32), "axial", vrange)
        ax.set_title(labels[i] if labels is not None else f"#{i}", fontsize=7)
    _colorbar(fig, axes, window, vrange)
    fig.suptitle(f"{title} (axial)" if title else "axial", fontsize=8)
    return fig


def save_image_grid(
    images: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    columns: int = 8,
    vrange: tuple[float, float] = (-1.0, 1.0),
    labels: Sequence[str] | None = None,
    window: IntensityWindow = MODEL_WINDOW,
    title: str = "",
) -> Path:
    """PNG of :func:`image_grid_figure`."""
    return _save_png(image_grid_figure(images, columns, vrange, labels, window, title), path, title)


def _save_png(fig: Any, path: str | os.PathLike[str], title: str = "") -> Path:
    """Lay out, write atomically (with title and software in the PNG's text chunks) and close a figure."""
    from medgan3d import __version__

    plt = _plt()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"Software": f"medgan3d {__version__}", **({"Title": title} if title else {})}
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100, metadata=meta))
    plt.close(fig)
    return path


def save_figure(fig: Any, path: str | os.PathLike[str], title: str = "") -> Path:
    """Write a figure made by one of the ``*_figure`` functions as PNG, atomically, and close it."""
    return _save_png(fig, path, title)


def save_plane_grids(
    grid: Sequence[Sequence[np.ndarray | None]],
    out_dir: str | os.PathLike[str],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    vrange: tuple[float, float] = (-1.0, 1.0),
    stem: str = "grid",
    window: IntensityWindow = MODEL_WINDOW,
) -> list[Path]:
    """``{stem}_axial.png``, ``_coronal.png``, ``_sagittal.png``: a labelled table of one plane's centre slices.

    ``grid[i][j]`` is a ``[D, H, W]`` volume or ``None`` (an empty cell, e.g. the corner of a mixing grid).
    """
    plt = _plt()
    aspects = _aspects(spacing)
    rows, cols = len(grid), max(len(r) for r in grid)
    paths = []
    for p, plane in enumerate(PLANES):
        fig, axes = plt.subplots(
            rows, cols, figsize=(1.7 * cols + 0.9, 1.7 * rows + 0.4), squeeze=False, layout="constrained"
        )
        for i in range(rows):
            for j in range(cols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                vol = grid[i][j] if j < len(grid[i]) else None
                if vol is None:
                    ax.axis("off")
                    continue
                _show(ax, centre_slices(np.asarray(vol, dtype=np.float32))[p], plane, vrange, aspects[p])
                if i == 0 and col_labels[j]:
                    ax.set_title(col_labels[j], fontsize=8)
                if j == 0 and row_labels[i]:
                    ax.set_ylabel(row_labels[i], fontsize=8)
        _colorbar(fig, axes, window, vrange)
        heading = f"{plane}: {title}" if title else plane
        fig.suptitle(heading, fontsize=9)
        paths.append(_save_png(fig, Path(out_dir) / f"{stem}_{plane}.png", heading))
    return paths


def slice_strip(
    volume: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    vrange: tuple[float, float] = (-1.0, 1.0),
    height: int = 128,
) -> np.ndarray:
    """The three centre slices side by side as one uint8 image of ``height`` rows, each at its mm aspect."""
    from PIL import Image

    sd, sh, sw = spacing
    mm = [(sh, sw), (sd, sw), (sd, sh)]  # (row, column) voxel sizes of axial, coronal, sagittal
    lo, hi = vrange
    tiles = []
    for img, (row_mm, col_mm) in zip(centre_slices(np.asarray(volume, dtype=np.float32)), mm, strict=True):
        grey = np.clip((img[::-1] - lo) / (hi - lo), 0.0, 1.0)
        tile = Image.fromarray(np.round(grey * 255).astype(np.uint8))
        width = max(1, round(height * (img.shape[1] * col_mm) / (img.shape[0] * row_mm)))
        resample = Image.Resampling.NEAREST if height >= img.shape[0] else Image.Resampling.BILINEAR
        tiles.append(np.asarray(tile.resize((width, height), resample)))
    gap = np.zeros((height, 2), dtype=np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)


def save_gif(frames: Sequence[np.ndarray], path: str | os.PathLike[str], frame_ms: int = 150) -> Path:
    """An endlessly looping animated GIF of uint8 greyscale frames (Pillow), written atomically."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path,
        lambda p: images[0].save(
            p, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0
        ),
    )
    return path
