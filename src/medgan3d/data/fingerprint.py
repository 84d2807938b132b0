"""A prepared dataset's fingerprint: shape, spacing and intensity statistics across its scans, the scans that
stand out from the rest, and ``preview.png`` — what a user checks (windowing, orientation, a stray file)
before spending GPU hours on the data.

Per scan (:func:`scan_statistics`, in the worker that read it): the raw shape and spacing, the 1st/50th/99th
intensity percentiles in the scanner's units, the correlation of neighbouring voxels (anatomy is smooth,
about 0.8-1; a pure-noise volume about 0), and the share of cached voxels clipped at either end of the
window. An outlier (:func:`outliers`, with at least :data:`MIN_SCANS` scans) is a scan that

- looks like noise: neighbour correlation below 0.5 and below half the dataset's median;
- has another voxel size: a spacing more than 1.5× or less than 1/1.5× the median on some axis;
- has other intensities: its 1st or 99th percentile more than half the median 1-99 % range away from the
  dataset's median one, or a 1-99 % range over 3× (or under 1/3 of) the median range (e.g. a scan stored
  with an offset, another modality, or an unscaled one). The median is not compared: in CT it follows the
  field of view (how much air is in it), not the scanner.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MIN_SCANS = 3  # fewer: no "rest" to stand out from
SAMPLE_VOXELS = 2_000_000  # statistics of larger scans use an evenly strided subset
PREVIEW_NAME = "preview.png"
PREVIEW_ROWS = 4


def _strided(x: np.ndarray, keep_axis: int | None = None) -> np.ndarray:
    """An even subset of about SAMPLE_VOXELS voxels (``keep_axis`` kept whole, for neighbour pairs)."""
    step = max(1, round((x.size / SAMPLE_VOXELS) ** (1 / 3)))
    index = [slice(None, None, step)] * x.ndim
    if keep_axis is not None:
        index[keep_axis] = slice(None)
    return x[tuple(index)]


def neighbour_correlation(x: np.ndarray) -> float:
    """Mean over the three axes of the Pearson correlation between each voxel and its next neighbour."""
    values = []
    for axis in range(3):
        if x.shape[axis] < 2:
            continue
        y = _strided(x, axis).astype(np.float64)
        a = np.take(y, range(y.shape[axis] - 1), axis=axis).ravel()
        b = np.take(y, range(1, y.shape[axis]), axis=axis).ravel()
        if a.std() > 0 and b.std() > 0:
            values.append(float(np.corrcoef(a, b)[0, 1]))
    return float(np.mean(values)) if values else 0.0


def scan_statistics(raw: np.ndarray, cached: np.ndarray) -> dict[str, Any]:
    """What the fingerprint keeps of one scan: ``raw`` in scanner units, ``cached`` in [-1, 1]."""
    sample = _strided(np.asarray(raw, dtype=np.float32))
    p1, p50, p99 = (float(v) for v in np.percentile(sample, [1, 50, 99]))
    return {
        "intensity_p1_p50_p99": [p1, p50, p99],
        "neighbour_correlation": round(neighbour_correlation(np.asarray(raw, dtype=np.float32)), 4),
        "clipped_low": round(float(np.mean(cached <= -1.0)), 4),
        "clipped_high": round(float(np.mean(cached >= 1.0)), 4),
    }


def _spread(values: Sequence[Sequence[float]]) -> dict[str, list[float]]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        k: np.round(f(arr, 0), 4).tolist()
        for k, f in (("min", np.min), ("median", np.median), ("max", np.max))
    }


def outliers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scans that stand out (the rules are in the module docstring), each with its reasons."""
    if len(rows) < MIN_SCANS:
        return []
    spacing = np.median([r["spacing"] for r in rows], axis=0)
    corr = float(np.median([r["neighbour_correlation"] for r in rows]))
    pct = np.asarray([r["intensity_p1_p50_p99"] for r in rows], dtype=np.float64)
    low, high = float(np.median(pct[:, 0])), float(np.median(pct[:, 2]))
    span = float(np.median(pct[:, 2] - pct[:, 0]))
    found = []
    for r, (p1, _, p99) in zip(rows, pct, strict=True):
        reasons = []
        if r["neighbour_correlation"] < min(0.5, corr / 2):
            reasons.append(
                f"looks like noise: neighbour correlation {r['neighbour_correlation']:.2f} "
                f"(dataset median {corr:.2f})"
            )
        ratio = np.asarray(r["spacing"]) / spacing
        if np.any(ratio > 1.5) or np.any(ratio < 1 / 1.5):
            reasons.append(f"spacing {_mm(r['spacing'])} mm, the dataset's median {_mm(spacing)} mm")
        if span > 0 and (
            max(abs(p1 - low), abs(p99 - high)) > span / 2 or not 1 / 3 <= (p99 - p1) / span <= 3
        ):
            reasons.append(
                f"intensities 1-99 % {p1:.4g} to {p99:.4g}, the dataset's median {low:.4g} to {high:.4g}"
            )
        if reasons:
            found.append({"source": r["source"], "reasons": reasons})
    return found


def _mm(values: Sequence[float]) -> str:
    return "×".join(f"{v:.3g}" for v in values)


def fingerprint(items: list[dict[str, Any]], scans: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``fingerprint`` block of report.json from the manifest items and their :func:`scan_statistics`."""
    rows = [
        {"source": it["source"], "shape": it["original_shape"], "spacing": it["original_spacing"], **st}
        for it, st in zip(items, scans, strict=True)
    ]
    return {
        "scans": len(rows),
        "shape": _spread([r["shape"] for r in rows]),
        "spacing_mm": _spread([r["spacing"] for r in rows]),
        "intensity_p1_p50_p99": _spread([r["intensity_p1_p50_p99"] for r in rows]),
        "neighbour_correlation": _spread([[r["neighbour_correlation"]] for r in rows]),
        "clipped_low_high": _spread([[r["clipped_low"], r["clipped_high"]] for r in rows]),
        "outliers": outliers(rows),
        "per_scan": rows,
        "rules": "see medgan3d.data.fingerprint (docs/data.md, 'Fingerprint and preview')",
    }


def preview_indices(items: list[dict[str, Any]], flagged: list[dict[str, Any]]) -> list[int]:
    """The first volumes and then the outliers, at most PREVIEW_ROWS + 2 rows."""
    names = {o["source"] for o in flagged}
    first = list(range(min(PREVIEW_ROWS, len(items))))
    odd = [i for i, it in enumerate(items) if it["source"] in names and i not in first]
    return first + odd[:2]


def write_preview(
    path: Path,
    volumes: np.ndarray,
    items: list[dict[str, Any]],
    manifest: dict[str, Any],
    flagged: list[dict[str, Any]],
) -> Path:
    """``preview.png`` of :func:`preview_figure`."""
    from medgan3d.viz import save_figure

    fig = preview_figure(volumes, items, manifest, flagged)
    return save_figure(fig, path, fig.get_suptitle())


def preview_figure(
    volumes: np.ndarray, items: list[dict[str, Any]], manifest: dict[str, Any], flagged: list[dict[str, Any]]
) -> Any:
    """Axial, coronal and sagittal centre slices of a few cached volumes at their mm aspect, with orientation
    letters, each row named by its scan (and marked if it is an outlier), and a colour bar in the data's
    units labelled with the window."""
    from medgan3d.viz import IntensityWindow, slice_grid_figure

    odd = {o["source"] for o in flagged}
    rows = preview_indices(items, flagged)
    titles = [_short(items[i]["source"]) + ("\n(outlier)" if items[i]["source"] in odd else "") for i in rows]
    window = IntensityWindow.of_intensity(manifest["intensity"])  # the dict prepare is about to write
    title = f"{len(rows)} of {len(items)} prepared volumes · {window.describe()}"
    vols = [np.asarray(volumes[i][0], dtype=np.float32) for i in rows]
    return slice_grid_figure(vols, spacing=manifest["spacing"], titles=titles, window=window, title=title)


def _short(source: str, width: int = 28) -> str:
    name = Path(source).name or source
    return name if len(name) <= width else "…" + name[-(width - 1) :]
