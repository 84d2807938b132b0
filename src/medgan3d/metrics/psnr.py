"""PSNR between generated and real volumes (Liu et al., arXiv 2208.03934 Table 8), with an explicit pairing.

Generated volumes have no ground-truth partner, so the pairing must be stated. Here each generated volume
is compared with its *nearest* real volume, nearest by mean squared error over all voxels; PSNR =
10 log10(L² / MSE) with L the data range (2 for intensities in [-1, 1]). The score is the mean over
generated volumes. A generator that copies a training volume scores +∞ for that volume: the per-volume
value is capped at ``max_db`` (100 dB) so that means stay finite, and the cap is recorded.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def pairwise_mse(fake: Tensor, real: Tensor, batch: int = 64) -> Tensor:
    """``[N_fake, N_real]`` mean squared errors between flattened volumes (float64)."""
    f = fake.flatten(1).double()
    rows = []
    for start in range(0, len(real), batch):
        r = real[start : start + batch].flatten(1).double()
        d = (f * f).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2.0 * f @ r.T
        rows.append(d.clamp_min(0.0) / f.shape[1])
    return torch.cat(rows, dim=1)


def psnr_from_mse(mse: Tensor | np.ndarray, data_range: float = 2.0, max_db: float = 100.0) -> np.ndarray:
    """10 log10(L² / MSE) per element, capped at ``max_db``."""
    mse = np.asarray(mse, dtype=np.float64)
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(data_range**2 / mse)
    return np.minimum(db, max_db)


def nearest_real_psnr(
    fake: Tensor, real: Tensor, data_range: float = 2.0, max_db: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per generated volume: PSNR against its nearest real volume (by MSE), and that real index."""
    if fake.shape[1:] != real.shape[1:]:
        raise ValueError(
            f"PSNR needs equal volume shapes, got {list(fake.shape[1:])} and {list(real.shape[1:])}"
        )
    index = pairwise_mse(fake, real).argmin(dim=1)
    # Recompute the chosen pairs directly: the expanded form above loses precision for near-copies.
    best = ((fake.double() - real[index].double()) ** 2).flatten(1).mean(1)
    return psnr_from_mse(best.numpy(), data_range, max_db), index.numpy()
