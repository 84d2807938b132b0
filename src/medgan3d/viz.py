"""Pictures of volumes: the axial, sagittal and coronal centre slices."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medgan3d.modeling import atomic_write

PLANES = ("axial", "coronal", "sagittal")


def centre_slices(volume: np.ndarray) -> list[np.ndarray]:
    """Centre slices of a ``[D, H, W]`` volume (D axial): axial ``[H, W]``, coronal ``[D, W]``, sagittal ``[D, H]``."""
    d, h, w = volume.shape
    return [volume[d // 2], volume[:, h // 2, :], volume[:, :, w // 2]]


def save_slice_grid(
    volumes: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    vrange: tuple[float, float] = (-1.0, 1.0),
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    titles: Sequence[str] | None = None,
) -> Path:
    """PNG with one row per ``[D, H, W]`` volume and its three centre slices, aspect from the voxel spacing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sd, sh, sw = spacing
    aspects = [sh / sw, sd / sw, sd / sh]  # rows/cols pixel aspect of axial, coronal, sagittal
    fig, axes = plt.subplots(len(volumes), 3, figsize=(7.5, 2.6 * len(volumes)), squeeze=False)
    for row, vol in enumerate(volumes):
        for col, (img, aspect) in enumerate(
            zip(centre_slices(np.asarray(vol, dtype=np.float32)), aspects, strict=True)
        ):
            ax = axes[row, col]
            # Flip rows so that superior/anterior is up for the RAS-ordered [D, H, W] layout.
            ax.imshow(img[::-1], cmap="gray", vmin=vrange[0], vmax=vrange[1], aspect=aspect)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(PLANES[col])
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row])
    return _save_png(fig, path)


def save_image_grid(images: Sequence[np.ndarray], path: str | os.PathLike[str], columns: int = 8,
                    vrange: tuple[float, float] = (-1.0, 1.0)) -> Path:  # fmt: skip
    """PNG grid of 2D images ``[H, W]`` (2D-twin samples, axial slices), rows flipped like the volume grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(images) + columns - 1) // columns
    cols = min(columns, len(images))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, images, strict=False):
        ax.imshow(np.asarray(img, dtype=np.float32)[::-1], cmap="gray", vmin=vrange[0], vmax=vrange[1])
    return _save_png(fig, path)


def _save_png(fig, path: str | os.PathLike[str]) -> Path:  # type: ignore[no-untyped-def]
    """Lay out, write atomically and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return path


def save_plane_grids(
    grid: Sequence[Sequence[np.ndarray | None]],
    out_dir: str | os.PathLike[str],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    vrange: tuple[float, float] = (-1.0, 1.0),
    stem: str = "grid",
) -> list[Path]:
    """``{stem}_axial.png``, ``_coronal.png``, ``_sagittal.png``: a labelled table of one plane's centre slices.

    ``grid[i][j]`` is a ``[D, H, W]`` volume or ``None`` (an empty cell, e.g. the corner of a mixing grid).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sd, sh, sw = spacing
    aspects = [sh / sw, sd / sw, sd / sh]
    rows, cols = len(grid), max(len(r) for r in grid)
    paths = []
    for p, plane in enumerate(PLANES):
        fig, axes = plt.subplots(rows, cols, figsize=(1.7 * cols, 1.7 * rows + 0.4), squeeze=False)
        for i in range(rows):
            for j in range(cols):
                ax = axes[i, j]
                ax.set_xticks([])
                ax.set_yticks([])
                vol = grid[i][j] if j < len(grid[i]) else None
                if vol is None:
                    ax.axis("off")
                    continue
                img = centre_slices(np.asarray(vol, dtype=np.float32))[p]
                ax.imshow(img[::-1], cmap="gray", vmin=vrange[0], vmax=vrange[1], aspect=aspects[p])
                if i == 0 and col_labels[j]:
                    ax.set_title(col_labels[j], fontsize=8)
                if j == 0 and row_labels[i]:
                    ax.set_ylabel(row_labels[i], fontsize=8)
        fig.suptitle(f"{plane}: {title}" if title else plane, fontsize=9)
        paths.append(_save_png(fig, Path(out_dir) / f"{stem}_{plane}.png"))
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
    atomic_write(path, lambda p: images[0].save(p, format="GIF", save_all=True, append_images=images[1:],
                                                duration=frame_ms, loop=0))  # fmt: skip
    return path
