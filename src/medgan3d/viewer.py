"""A self-contained HTML viewer for 3D volumes: scroll every plane, side by side, with an adjustable window.

The page embeds each volume as base64 uint8 (the data's values quantised linearly over one range in data
units, by default the trained window) and a small canvas script (``viewer.js``, inlined): no network access,
no plug-in, any browser. Each group of volumes (generated, real, a folder) is a pane with its three planes at
their millimetre aspect (the voxel spacing), oriented as the report's figures (:mod:`medgan3d.viz`:
RAS ``[D, H, W]``, superior/anterior up, the patient's left on the left, letters at every edge). Slice
sliders, the mouse wheel over a plane and a click (which moves the other planes to the clicked point) move
through the volumes; two sliders set the display window in data units.

Used by ``report.html`` (:mod:`medgan3d.metrics.report`) and ``medgan3d view`` (:func:`collect`).
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from medgan3d.fs import atomic_write
from medgan3d.viz import IntensityWindow

DISPLAY_PX = 220  # the largest plane extent of any volume, in screen pixels
LEVELS = 255  # uint8 quantisation steps over the page's range
STYLE = """.mv{font-family:sans-serif;font-size:13px;background:#111;color:#ddd;padding:8px;border-radius:4px;margin:1em 0}
.mv-title{font-weight:bold;margin-bottom:4px}.mv-controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;
margin-bottom:6px}.mv-controls input[type=range]{vertical-align:middle}.mv-panes{display:flex;flex-wrap:wrap;gap:16px}
.mv-pane{border:1px solid #444;padding:6px}.mv-pane h3{margin:0 0 4px 0;font-size:14px}.mv-planes{display:flex;gap:6px;
align-items:flex-start}.mv figure{margin:0;text-align:center}.mv canvas.mv-slice{display:block;background:#000;
cursor:crosshair}.mv figcaption{font-size:11px}.mv-note{font-size:11px;color:#aaa;margin-left:6px}
.mv-colorbar{border:1px solid #666;vertical-align:middle}"""


@dataclass
class ViewVolume:
    """One volume to show: ``array`` ``[D, H, W]`` in data units (RAS), ``spacing`` (d, h, w) in mm."""

    name: str
    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    note: str = ""


@dataclass
class ViewGroup:
    """A pane of the viewer: volumes shown one at a time, with a selector."""

    name: str
    volumes: list[ViewVolume] = field(default_factory=list)


def quantize(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``array`` clipped to [lo, hi] and mapped linearly to 0..255 (uint8), as the page stores it."""
    scaled = (np.asarray(array, dtype=np.float64) - lo) / (hi - lo)
    return np.round(np.clip(scaled, 0.0, 1.0) * LEVELS).astype(np.uint8)


def pooled_range(
    groups: Sequence[ViewGroup], percentiles: tuple[float, float] = (0.5, 99.5)
) -> tuple[float, float]:
    """The 0.5th and 99.5th percentiles of every voxel shown: a quantisation range for data of unknown units
    (a CT scan's metal or air outliers would otherwise take most of the 256 levels)."""
    values = np.concatenate(
        [np.asarray(v.array, dtype=np.float32).ravel() for g in groups for v in g.volumes]
    )
    lo, hi = (float(x) for x in np.percentile(values, percentiles))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def payload(
    groups: Sequence[ViewGroup],
    value_range: tuple[float, float],
    window: tuple[float, float] | None = None,
    unit: str = "",
    title: str = "",
    size: int = DISPLAY_PX,
) -> dict[str, Any]:
    """The JSON the page's script reads: groups of base64 uint8 volumes quantised over ``value_range`` (data
    units), the initial display ``window`` (default: the whole range), the unit and the title."""
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise ValueError(f"viewer range [{lo}, {hi}] is empty")
    if not any(g.volumes for g in groups):
        raise ValueError("nothing to show: no volumes")
    shown = []
    for g in groups:
        if not g.volumes:
            continue
        vols = []
        for v in g.volumes:
            arr = np.asarray(v.array)
            if arr.ndim != 3:
                raise ValueError(f"{v.name}: a viewer volume is [D, H, W], got shape {list(arr.shape)}")
            data = base64.b64encode(np.ascontiguousarray(quantize(arr, lo, hi)).tobytes()).decode("ascii")
            vols.append(
                {
                    "name": v.name,
                    "note": v.note,
                    "shape": list(arr.shape),
                    "spacing": [float(s) for s in v.spacing],
                    "data": data,
                }
            )
        shown.append({"name": g.name, "volumes": vols})
    win = [lo, hi] if window is None else [max(lo, float(window[0])), min(hi, float(window[1]))]
    return {
        "title": title,
        "unit": unit or "units",
        "range": [lo, hi],
        "window": win,
        "size": size,
        "groups": shown,
    }


def _script() -> str:
    return resources.files("medgan3d").joinpath("viewer.js").read_text(encoding="utf-8")


def fragment(data: dict[str, Any], with_assets: bool = True) -> str:
    """The viewer's HTML: a ``div.mv`` holding the JSON, and (``with_assets``) the style and script once."""
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    assets = f"<style>{STYLE}</style><script>{_script()}</script>" if with_assets else ""
    return f'<div class="mv"><script type="application/json" class="mv-data">{text}</script></div>{assets}'


def page(data: dict[str, Any], heading: str = "medgan3d viewer", intro: str = "") -> str:
    """A whole HTML page around one viewer."""
    from medgan3d import __version__

    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(heading)}</title></head>
<body style="font-family:sans-serif;margin:1.5em"><h1 style="font-size:20px">{html.escape(heading)}</h1>
<p>{html.escape(intro)} Scroll a plane with the mouse wheel or its slider; click a plane to move the other two
there; the window sliders set the grey scale (in {html.escape(data["unit"])}). Written by medgan3d {html.escape(__version__)}.</p>
{fragment(data)}</body></html>
"""


def write_page(
    path: str | os.PathLike[str], data: dict[str, Any], heading: str = "medgan3d viewer", intro: str = ""
) -> Path:
    """Write :func:`page` atomically; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = page(data, heading, intro)
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
    return path


def model_group(
    name: str,
    volumes: Any,
    window: IntensityWindow,
    spacing: Sequence[float] | None,
    names: Sequence[str] | None = None,
    note: str = "",
) -> ViewGroup:
    """A group from model-intensity volumes ``[N, 1, D, H, W]`` or ``[N, D, H, W]`` (numpy or torch) in
    [-1, 1], mapped to ``window``'s units (clipped to it, as ``generate`` writes them)."""
    arr = volumes.detach().cpu().numpy() if hasattr(volumes, "detach") else np.asarray(volumes)
    arr = arr[:, 0] if arr.ndim == 5 else arr
    d, h, w = (float(s) for s in (spacing or (1.0, 1.0, 1.0)))
    sp = (d, h, w)
    vols = [
        ViewVolume(
            names[i] if names else f"{name} {i}",
            np.asarray(window.to_units(np.clip(a, -1.0, 1.0)), dtype=np.float32),
            sp,
            note,
        )
        for i, a in enumerate(arr)
    ]
    return ViewGroup(name, vols)


@dataclass
class Source:
    """What one ``medgan3d view`` argument shows: groups, and the window its values are in (None: unknown)."""

    groups: list[ViewGroup]
    window: IntensityWindow | None = None


def collect(
    paths: Sequence[str | os.PathLike[str]], num: int = 8, seed: int = 0, psi: float = 1.0
) -> list[Source]:
    """Groups for every path: a run (or checkpoint, or saved generator): ``num`` generated volumes (seeds
    ``seed``…) and the first ``num`` real training volumes of its dataset; a prepared dataset: its first ``num``
    volumes; a folder or file of volumes (NIfTI, NRRD/MHA, npy; a folder of DICOM slices is one volume per
    series): the first ``num`` it holds, in name order."""
    from medgan3d.data.manifest import MANIFEST_NAME

    out = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
        if (path / MANIFEST_NAME).is_file() and not (path / "config.yaml").is_file():
            out.append(_dataset_source(path, num, "train"))
        elif _is_generator(path):
            out.extend(_run_sources(path, num, seed, psi))
        else:
            out.append(_files_source(path, num))
    return out


def _is_generator(path: Path) -> bool:
    from medgan3d.training.checkpoint import CKPT_PREFIX, is_network_dir

    if not path.is_dir():
        return False
    return (path / "config.yaml").is_file() or path.name.startswith(CKPT_PREFIX) or is_network_dir(path)


def _run_sources(path: Path, num: int, seed: int, psi: float) -> list[Source]:
    import yaml

    from medgan3d.data.manifest import MANIFEST_NAME
    from medgan3d.generate import find_manifest, resolve_source
    from medgan3d.sampling import sample
    from medgan3d.training.checkpoint import run_dir_of

    G, origin = resolve_source(path)
    if G.spatial_dims != 3:
        raise ValueError(f"{path}: a {G.spatial_dims}D generator; the viewer shows 3D volumes")
    manifest = find_manifest(path, None)
    window = IntensityWindow.of_manifest(manifest)
    spacing = manifest.spacing if manifest else None
    seeds = list(range(seed, seed + num))
    vols = sample(G, seeds, psi)[:, 0].numpy()
    kimg = f", kimg {origin['kimg']:g}" if origin["kimg"] is not None else ""
    name = f"generated ({Path(origin['run']).name}{kimg}, psi {psi:g})"
    groups = [model_group(name, vols, window, spacing, [f"seed {s}" for s in seeds], "synthetic")]
    out = [Source(groups, window if manifest else None)]
    config = run_dir_of(path) / "config.yaml"
    data = yaml.safe_load(config.read_text(encoding="utf-8")).get("data") if config.is_file() else None
    if data and (Path(data) / MANIFEST_NAME).is_file():
        out.append(_dataset_source(Path(data), num, "train", "real training volumes"))
    return out


def _dataset_source(root: Path, num: int, split: str, name: str | None = None) -> Source:
    from medgan3d.data import Manifest

    manifest = Manifest.load(root)
    idx = list(manifest.splits.get(split) or range(manifest.count))[:num]
    arr = np.asarray(manifest.open_array()[np.asarray(idx)], dtype=np.float32)
    window = IntensityWindow.of_manifest(manifest)
    names = [Path(manifest.items[i].source).name for i in idx]
    group = model_group(name or f"{root.name} ({split})", arr, window, manifest.spacing, names)
    return Source([group], window)


def _files_source(path: Path, num: int) -> Source:
    from medgan3d.data.io import DICOM_SUFFIXES, IMAGE_SUFFIXES, VolumeReadError, read_volumes, suffix_of
    from medgan3d.generate import sidecar_path

    if path.is_file():
        files = [path]
    else:  # single files, and every folder of DICOM slices as its series
        found = sorted(p for p in path.rglob("*") if p.is_file() and suffix_of(p) in IMAGE_SUFFIXES)
        dicom = sorted({p.parent for p in found if suffix_of(p) in DICOM_SUFFIXES})
        files = [p for p in found if suffix_of(p) not in DICOM_SUFFIXES] + dicom
    if not files:
        raise ValueError(f"{path}: no volume files (looked for {', '.join(IMAGE_SUFFIXES)})")
    vols, windows = [], []
    for file in files:
        for res in read_volumes(file):
            if isinstance(res, VolumeReadError):
                raise ValueError(str(res))
            side = _sidecar(sidecar_path(file))
            note = ""
            if side.get("synthetic"):
                kimg = f", kimg {side['kimg']:g}" if isinstance(side.get("kimg"), int | float) else ""
                note = f"synthetic ({side.get('tool', 'medgan3d')}{kimg})"
                if isinstance(side.get("window"), list) and len(side["window"]) == 2:
                    windows.append(
                        IntensityWindow(
                            float(side["window"][0]),
                            float(side["window"][1]),
                            str(side.get("units") or "units"),
                            "window",
                        )
                    )
            name = Path(res.source).name.removesuffix(".gz").removesuffix(".nii")
            vols.append(ViewVolume(name, res.array, res.meta.spacing, note))
            if len(vols) == num:
                break
        if len(vols) == num:
            break
    window = windows[0] if windows and all(w == windows[0] for w in windows) else None
    return Source([ViewGroup(path.name or str(path), vols)], window)


def _sidecar(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def combine(
    sources: Sequence[Source], window: tuple[float, float] | None = None, title: str = ""
) -> dict[str, Any]:
    """One viewer's :func:`payload` for every source: quantised over ``window`` when given, else over the union
    of the sources' windows and, for sources of unknown units, their :func:`pooled_range`; the initial display
    window is ``window``, else the first known one, else the whole range."""
    groups = [g for s in sources for g in s.groups]
    known = [s.window for s in sources if s.window is not None]
    unit = known[0].unit if known else "values"
    if window is not None:
        return payload(groups, window, window, unit, title)
    spans = [(w.lo, w.hi) for w in known] + [pooled_range(s.groups) for s in sources if s.window is None]
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    initial = (known[0].lo, known[0].hi) if known else (lo, hi)
    return payload(groups, (lo, hi), initial, unit, title)
