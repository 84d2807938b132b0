"""Memorisation check: are generated volumes closer to the training volumes than unseen real volumes are?

A generator that copies its training scans scores well on every distribution metric and leaks patients. The
check compares two sets of nearest-neighbour distances to the *training* volumes (Meehan, Chaudhuri and
Dasgupta, "A Non-Parametric Test to Detect Data-Copying in Generative Models", AISTATS 2020, §3, the test
statistic Z_U; here on the whole set, without their cells):

- each generated volume's distance to its nearest training volume, d_gen;
- each held-out real volume's (the dataset's ``val`` split, never trained on) distance to its nearest training
  volume, d_heldout: how close an independent scan of the same population comes to the training set.

Distance: the root mean squared difference over all voxels in model intensities [-1, 1] (range 2). The
Mann–Whitney statistic U counts the pairs (generated, held-out) in which the generated volume is farther from
the training set (ties count ½); Z_U = (U − mn/2) / sqrt(mn(m + n + 1)/12). Z_U ≈ 0 when generated volumes are
as far from the training set as unseen real ones; Z_U ≪ 0 means they sit closer: data-copying. Volumes whose
distance is (numerically) zero are exact copies and are named with the training index they copy. A generated
volume closer than *every* held-out volume is "closer than any unseen scan"; if the generated and held-out
distances come from one distribution, a volume is so with probability 1/(m + 1), the expected fraction.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

COPY_RMS = 1e-3  # RMS difference (model units, range 2) under which a generated volume is an exact copy
Z_COPYING = -3.0  # one-sided p ≈ 0.0013 under the normal approximation
MIN_HELDOUT = 2


def nearest_distances(x: Tensor, train: Any, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``x`` ``[N, ...]``: the RMS difference to its nearest row of ``train`` (a tensor or a numpy
    memmap, read ``batch`` rows at a time) and that row's index. The search uses float32 products (no float64
    copy of a large set); the chosen pairs are then recomputed directly in float64, since the expanded form
    ||a||² + ||b||² − 2a·b loses the small distances of near-copies."""
    f = x.detach().float().flatten(1)
    fsq = torch.stack([(row.double() ** 2).sum() for row in f])
    best = torch.full((len(f),), float("inf"), dtype=torch.float64)
    index = torch.zeros(len(f), dtype=torch.long)
    for start in range(0, len(train), batch):
        r = torch.as_tensor(np.asarray(train[start : start + batch], dtype=np.float32)).flatten(1)
        rsq = torch.stack([(row.double() ** 2).sum() for row in r])
        d = (fsq[:, None] + rsq[None, :] - 2.0 * (f @ r.T).double()).clamp_min(0.0)
        low, arg = d.min(1)
        better = low < best
        best[better], index[better] = low[better], arg[better] + start
    rms = [
        float(
            (
                (
                    f[i].double()
                    - torch.as_tensor(np.asarray(train[int(j)], dtype=np.float32)).flatten().double()
                )
                ** 2
            )
            .mean()
            .sqrt()
        )
        for i, j in enumerate(index)
    ]
    return np.asarray(rms), index.numpy()


def mann_whitney_z(gen: np.ndarray, heldout: np.ndarray) -> tuple[float, float]:
    """U = #pairs with the generated distance larger (ties ½) and Z_U, its normal approximation (no tie
    correction), as Meehan et al. (AISTATS 2020) define it: negative when generated volumes are closer."""
    n, m = len(gen), len(heldout)
    diff = gen[:, None] - heldout[None, :]
    u = float((diff > 0).sum() + 0.5 * (diff == 0).sum())
    z = (u - n * m / 2.0) / math.sqrt(n * m * (n + m + 1) / 12.0)
    return u, z


def verdict(exact: int, n: int, z: float | None) -> tuple[str, str]:
    """A code (``copies``, ``copying``, ``none``, ``unknown``) and a plain sentence for the report."""
    if exact:
        return "copies", (
            f"{exact} of {n} generated volumes are exact copies of training volumes: the model "
            "memorised them; do not share these samples as synthetic data."
        )
    if z is None:
        return "unknown", (
            "Cannot tell: the dataset has too few held-out (val) volumes to say how close an "
            "unseen scan comes to the training set (prepare with a validation split)."
        )
    if z < Z_COPYING:
        return "copying", (
            f"Likely memorisation: generated volumes sit closer to their nearest training volume "
            f"than unseen real volumes do (Z_U = {z:.2f} < {Z_COPYING:g}); some may be near-copies "
            "of training scans."
        )
    return "none", (
        f"No sign of copying: generated volumes are no closer to the training volumes than unseen "
        f"real volumes are (Z_U = {z:.2f}; below {Z_COPYING:g} would mean copying)."
    )


def memorisation(
    fake: Tensor, train: Any, heldout: Tensor | None, train_indices: list[int]
) -> dict[str, Any]:
    """The check's record: distances, Z_U, exact copies, the fraction closer than any unseen scan, a verdict.

    ``train``: the training volumes (rows of a tensor or memmap) whose dataset indices are ``train_indices``;
    ``heldout``: the held-out real volumes (None or fewer than 2: no comparison)."""
    d_gen, idx = nearest_distances(fake, train)
    record: dict[str, Any] = {
        "distance": "RMS voxel difference to the nearest training volume, model intensities [-1, 1] (range 2)",
        "method": "Mann-Whitney Z_U of generated vs held-out nearest-training distances (Meehan et al., AISTATS 2020)",
        "train_volumes": len(train_indices),
        "generated": _summary(d_gen),
        "nearest_train": [int(train_indices[i]) for i in idx],
        "generated_distances": [float(d) for d in d_gen],
    }
    exact = [i for i, d in enumerate(d_gen) if d < COPY_RMS]
    record["exact_copies"] = [{"generated": i, "train_index": int(train_indices[idx[i]])} for i in exact]
    z = None
    if heldout is not None and len(heldout) >= MIN_HELDOUT:
        d_held, _ = nearest_distances(heldout, train)
        u, z = mann_whitney_z(d_gen, d_held)
        closer = float(np.mean(d_gen < d_held.min()))
        record |= {
            "heldout": _summary(d_held),
            "heldout_volumes": len(d_held),
            "u": u,
            "z_u": z,
            "closer_than_any_heldout": closer,
            "closer_expected": 1.0 / (len(d_held) + 1),
            "ratio_of_medians": float(np.median(d_gen) / max(np.median(d_held), 1e-12)),
        }
    else:
        record["heldout_volumes"] = 0 if heldout is None else len(heldout)
    record["verdict"], record["verdict_text"] = verdict(len(exact), len(d_gen), z)
    return record


def _summary(d: np.ndarray) -> dict[str, float]:
    return {
        "min": float(d.min()),
        "median": float(np.median(d)),
        "mean": float(d.mean()),
        "max": float(d.max()),
    }
