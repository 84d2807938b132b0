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
