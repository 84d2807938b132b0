"""Axial, sagittal and coronal slices of volume batches for slice FID (Liu et al., arXiv 2208.03934 §4.1.2).

Layout ``[N, C, D, H, W]`` in RAS order (docs/data.md): D runs inferior→superior, H posterior→anterior,
W left→right. A slice at fixed D is axial ``[H, W]``, at fixed W sagittal ``[D, H]``, at fixed H
coronal ``[D, W]``. The paper uses the centre slice of each plane (index size // 2); ``all_slices``
returns every slice of the plane instead (N·size images).
"""

from __future__ import annotations

from torch import Tensor

PLANES = ("ax", "sag", "cor")
_AXIS = {"ax": 2, "cor": 3, "sag": 4}


def plane_slices(volumes: Tensor, plane: str, all_slices: bool = False) -> Tensor:
    """2D images ``[M, C, h, w]`` of ``plane`` (``"ax"``, ``"sag"`` or ``"cor"``) from ``[N, C, D, H, W]``."""
    if plane not in _AXIS:
        raise ValueError(f"plane must be one of {PLANES}, got {plane!r}")
    if volumes.ndim != 5:
        raise ValueError(f"expected volumes [N, C, D, H, W], got shape {list(volumes.shape)}")
    axis = _AXIS[plane]
    if not all_slices:
        return volumes.select(axis, volumes.shape[axis] // 2)
    moved = volumes.movedim(axis, 1)  # [N, S, C, a, b]
    return moved.reshape(-1, *moved.shape[2:])
