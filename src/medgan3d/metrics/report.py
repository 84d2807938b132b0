"""Evaluation report: metrics.json, PNG figures and one HTML page.

Figures: real and generated centre-slice grids (:func:`medgan3d.viz.save_slice_grid`: the dataset's voxel
spacing, orientation letters, a colour bar in the data's units), a t-SNE of real vs generated features (Liu et al., arXiv 2208.03934
Figs. 7–8), and a bar chart of the FIDs with their intervals. The HTML page says what was scored (checkpoint,
kimg, medgan3d version), warns about scores on too few samples, explains every metric in a sentence, shows the
95 % intervals under their real names, and the details and provenance as tables.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from medgan3d import __version__
from medgan3d.fs import atomic_write
from medgan3d.metrics.evaluate import SCORE_KEYS, SCORE_KEYS_2D, EvalArtifacts
from medgan3d.viz import IntensityWindow, save_image_grid, save_slice_grid

_FID = "Fréchet distance between Gaussians fitted to {what} of real and generated {unit}; 0 when they match, lower is better."
EXPLAIN = {
    "fid_ax": _FID.format(what="2D-extractor features of the axial centre slices", unit="volumes"),
    "fid_sag": _FID.format(what="2D-extractor features of the sagittal centre slices", unit="volumes"),
    "fid_cor": _FID.format(what="2D-extractor features of the coronal centre slices", unit="volumes"),
    "fid_avg": "Mean of the axial, sagittal and coronal FIDs (Liu et al.'s (arXiv 2208.03934) FID-avg); lower is better.",
    "fid_3d": _FID.format(what="whole-volume 3D-extractor features", unit="volumes"),
    "fid_2d": _FID.format(what="2D-extractor features", unit="images against the real axial slices"),
    "kid": "Kernel inception distance: unbiased squared MMD with a cubic polynomial kernel on the 3D features; "
    "about 0 when the distributions match, lower is better.",
    "mmd": "Unbiased squared maximum mean discrepancy with a Gaussian kernel on the 3D features; about 0 (may be "
    "slightly negative) when the distributions match, lower is better.",
    "ms_ssim": "Mean MS-SSIM over random pairs of generated volumes: how alike the samples are to each other; "
    "lower means more diverse, and it should be near the real pairs' value, not as low as possible.",
    "ms_ssim_real": "The same MS-SSIM over pairs of real volumes: the diversity the generated set should match.",
    "psnr": "PSNR of each generated volume against its nearest real volume, averaged. Not a quality score: "
    "higher means closer to some real scan, which a copy of a training scan is too (read it with the "
    "memorisation check below).",
    "is": "Inception Score exp(E KL(p(y|x) || p(y))) under a 3D classifier; higher means confident and varied "
    "predictions; the value depends entirely on the classifier and means nothing without a trained one.",
}
INTERVAL_NOTE = (
    "95 % intervals: FIDs and IS use half-sampling — each round scores half of the generated volumes drawn "
    "without replacement, and the spread of those scores around their mean, added to the estimate, shows how "
    "much the score moves with the generated sample (Politis &amp; Romano 1994; Shao &amp; Wu 1989). It does not "
    "remove their upward small-sample bias: compare scores only at equal sample counts. The bootstrap with "
    "replacement is not used for them, since duplicated volumes inflate FID and its interval can miss its own "
    "estimate. PSNR and MS-SSIM are means and use the percentile bootstrap of the mean."
)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tsne_embedding(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> np.ndarray:
    """2D t-SNE (scikit-learn) of the standardised, pooled features; rows: real first, then generated."""
    from sklearn.manifold import TSNE

    x = np.concatenate([real, fake]).astype(np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=100))
    _plt().close(fig)
    return path


def save_tsne(real: np.ndarray, fake: np.ndarray, path: Path, title: str, seed: int = 0) -> Path:
    emb = tsne_embedding(real, fake, seed)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(*emb[: len(real)].T, s=14, alpha=0.7, label=f"real ({len(real)})")
    ax.scatter(*emb[len(real) :].T, s=14, alpha=0.7, marker="^", label=f"generated ({len(fake)})")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend()
    return _save(fig, path)


def save_fid_bars(result: dict, path: Path) -> Path:
    keys = [k for k in ("fid_ax", "fid_sag", "fid_cor", "fid_avg", "fid_3d", "fid_2d") if k in result]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    vals = [result[k] for k in keys]
    err = [
        [v - result["ci95"].get(k, [v, v])[0] for k, v in zip(keys, vals, strict=True)],
        [result["ci95"].get(k, [v, v])[1] - v for k, v in zip(keys, vals, strict=True)],
    ]
    ax.bar(keys, vals, yerr=np.clip(err, 0, None), capsize=4, color="#4c72b0")
    ax.set_ylabel("FID (lower is better)")
    ax.set_title("error bars: 95 % half-sampling interval", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return "—" if value is None else str(value)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, text) rows of a nested dict; lists of dicts as compact JSON."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{name}.")
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            yield name, json.dumps(value, default=str)
        else:
            yield name, _fmt(value)


def _kv_table(data: Mapping[str, Any]) -> str:
    """A readable two-column table: one row per top-level key, nested values as ``key: value`` lines."""
    rows = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            cell = "<br>".join(f"<code>{html.escape(k)}</code>: {html.escape(v)}" for k, v in _flatten(value))
        else:
            cell = html.escape(next(_flatten({key: value}))[1])
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{cell}</td></tr>")
    return f"<table class='kv'>{''.join(rows)}</table>"


def _interval_name(result: dict, key: str) -> str:
    method = result["details"].get(key, {}).get("interval", {}).get("method", "")
    return "half-sampling" if method.startswith("half") else "bootstrap of the mean" if method else ""


def _table(result: dict) -> str:
    rows = []
    for key in (*SCORE_KEYS, *SCORE_KEYS_2D, "is", "ms_ssim_real"):
        if key not in result:
            continue
        ci = result["ci95"].get(key)
        ci_text = f"[{ci[0]:.4g}, {ci[1]:.4g}] <small>{_interval_name(result, key)}</small>" if ci else "—"
        note = html.escape(EXPLAIN.get(key, ""))
        rows.append(f"<tr><td>{key}</td><td>{result[key]:.4g}</td><td>{ci_text}</td><td>{note}</td></tr>")
    head = "<tr><th>metric</th><th>value</th><th>95 % interval</th><th>what it measures</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def scored_text(prov: Mapping[str, Any]) -> str:
    """One sentence naming what was scored: the checkpoint and its kimg, or the folder (and its sidecars)."""
    src = prov.get("source") or {}
    gen = prov.get("generator") or {}
    if "generator" in src:
        where = (
            f"checkpoint {src['checkpoint']} (kimg {src['kimg']:g}) of run {src['run']}"
            if src.get("kimg") is not None
            else f"the saved generator {src['generator']} (no checkpoint, kimg unknown)"
        )
        return f"Scored: {where}, family {src.get('family')}, truncation ψ {src['truncation_psi']:g}, {_seeds(src)}."
    if "fake_dir" in src:
        origins = src.get("origins") or []
        said = "; ".join(
            f"{o['checkpoint'] or 'a saved generator'} (kimg {_fmt(o['kimg'])}) of {o['run']}"
            for o in origins
        )
        tail = f" Their sidecars say: {said}." if said else " No sidecars say which checkpoint made them."
        return f"Scored: {src['files']} files in {src['fake_dir']}.{tail}"
    if gen:
        return f"Scored: a generator in memory (ψ {gen.get('truncation_psi')}, {_seeds(gen)})."
    return "Scored: volumes passed in memory (no checkpoint recorded)."


def _seeds(source: Mapping[str, Any]) -> str:
    """``seeds 0-63, const noise`` (medgan3d.sampling); ``z seed S`` for results written before it."""
    if "seeds" in source:
        first, last = source["seeds"]
        return f"seeds {first}-{last}, {source.get('noise_mode', 'const')} noise"
    return f"z seed {source.get('z_seed')}"


def memorisation_html(result: dict) -> str:
    """The copy detector's verdict in a sentence, and its numbers (:mod:`medgan3d.metrics.memorisation`)."""
    mem = result.get("memorisation")
    if not mem:
        return ""
    colour = {"copies": "#f8d7da", "copying": "#f8d7da", "none": "#d4edda"}.get(mem["verdict"], "#fff3cd")
    gen = mem["generated"]
    rows = [
        f"generated volumes: median {gen['median']:.4g}, min {gen['min']:.4g} ({len(mem['generated_distances'])} "
        f"volumes, {mem['train_volumes']} training volumes)"
    ]
    if "heldout" in mem:
        held = mem["heldout"]
        rows.append(
            f"held-out real volumes (val split, never trained on): median {held['median']:.4g}, min "
            f"{held['min']:.4g} ({mem['heldout_volumes']} volumes)"
        )
        rows.append(
            f"Z_U = {mem['z_u']:.3g} (about 0: as far as unseen scans; below -3: copying); "
            f"{100 * mem['closer_than_any_heldout']:.0f} % of generated volumes are closer to the training "
            f"set than every held-out one (expected {100 * mem['closer_expected']:.0f} % without copying)"
        )
    if mem["exact_copies"]:
        rows.append(
            "exact copies: "
            + ", ".join(
                f"generated #{c['generated']} = training volume {c['train_index']}"
                for c in mem["exact_copies"]
            )
        )
    items = "".join(f"<li>{html.escape(r)}</li>" for r in rows)
    return (
        f"<h2>Memorisation check</h2><div style='background:{colour};padding:4px 12px;border:1px solid #aaa'>"
        f"<b>{html.escape(mem['verdict_text'])}</b></div><p>Distance of each volume to its nearest training "
        f"volume (RMS voxel difference in model intensities, range 2); the generated volumes should be no closer "
        f"than unseen real scans (Meehan et al., AISTATS 2020).</p><ul>{items}</ul>"
    )


def _per_class(result: dict) -> str:
    """A conditional model's scores per class (generated volumes of a class against the real ones of it)."""
    per = result.get("per_class") or {}
    keys = [k for k in (*SCORE_KEYS, "ms_ssim_real") if any(k in v for v in per.values())]
    if not per or not keys:
        return ""
    head = (
        "<tr><th>class</th><th>generated</th><th>real</th>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{v['num_fake']}</td><td>{v['num_real']}</td>"
        + "".join(f"<td>{v[k]:.4g}</td>" if k in v else "<td>—</td>" for k in keys)
        + "</tr>"
        for c, v in per.items()
    )
    return f"<h2>Per class</h2><p>Each class's generated volumes against the real volumes of that class.</p><table>{head}{rows}</table>"


def _warnings(result: dict) -> str:
    items = "".join(f"<li>{html.escape(w)}</li>" for w in result.get("warnings", []))
    return f"<div class='warn'><b>Too few samples:</b><ul>{items}</ul></div>" if items else ""


def viewer_html(art: EvalArtifacts, result: dict, count: int = 4) -> str:
    """The interactive viewer of the report: the first ``count`` generated and real volumes side by side, in the
    data's units and spacing (:mod:`medgan3d.viewer`); empty for 2D images."""
    from medgan3d.viewer import fragment, model_group, payload

    if art.fake.ndim != 5 or count <= 0:
        return ""
    prov = result["provenance"]
    window = IntensityWindow.of_intensity(prov.get("data_units"))
    spacing = prov.get("spacing")
    groups = [
        model_group(name, vols[:count], window, spacing)
        for name, vols in (("generated", art.fake), ("real", art.real))
    ]
    data = payload(
        groups,
        (window.lo, window.hi),
        unit=window.unit,
        title=f"generated and real volumes: {window.describe()}",
    )
    return (
        "<h2>Explore the volumes</h2><p>Scroll a plane with the mouse wheel or its slider, click a plane to move "
        "the other two there, and set the grey-scale window with the two window sliders.</p>" + fragment(data)
    )


def _page(result: dict, figures: dict[str, str], viewer: str = "") -> str:
    prov = result["provenance"]
    ext = "; ".join(f"{k}: {v['extractor']} ({v['weights']})" for k, v in prov["extractors"].items())
    imgs = "".join(
        f"<figure><img src='{html.escape(name)}' alt='{html.escape(cap)}'><figcaption>{html.escape(cap)}"
        "</figcaption></figure>"
        for cap, name in figures.items()
    )
    version = prov.get("medgan3d_version", __version__)
    units = IntensityWindow.of_intensity(prov.get("data_units")).describe()
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>medgan3d {version} evaluation</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 10px;vertical-align:top}}table.kv td,table.kv th{{font-size:90%;text-align:left}}
.warn{{background:#fff3cd;border:1px solid #e0b400;padding:4px 12px}}figure{{display:inline-block;margin:8px;
vertical-align:top}}img{{max-width:560px}}</style></head><body><h1>medgan3d evaluation</h1>
<p>medgan3d {html.escape(version)}. {html.escape(scored_text(prov))}</p>
<p>{prov["num_fake"]} generated vs {prov["num_real"]} real {prov.get("unit", "volumes")} ({html.escape(prov["real_split"])} split) of
{html.escape(prov["dataset"])}, resolution {prov["resolution"]}, voxel spacing {_fmt(prov.get("spacing"))} mm, scored in
model intensities [-1, 1] ({html.escape(units)}); {prov["slices"]} slices. Extractors: {html.escape(ext)}.</p>
{_warnings(result)}
{_table(result)}
{_per_class(result)}
<p>{INTERVAL_NOTE}</p>
{memorisation_html(result)}
<p>Scores from a random extractor rank models on this machine only; they are not comparable to published FIDs.</p>
{imgs}
{viewer}
<h2>Details</h2>{_kv_table(result["details"])}
<h2>Provenance</h2>{_kv_table(prov)}</body></html>
"""


def _grids(art: EvalArtifacts, result: dict, out: Path, grid_rows: int) -> dict[str, str]:
    """Real and generated slice grids with the dataset's spacing and units (2D images: labelled rows)."""
    prov = result["provenance"]
    window = IntensityWindow.of_intensity(prov.get("data_units"))
    spacing = prov.get("spacing") or (1.0, 1.0, 1.0)
    figures = {}
    for label, vols in (("real", art.real), ("generated", art.fake)):
        name = f"{label}_slices.png"
        if vols.ndim == 4:  # 2D images
            images = vols[: 2 * grid_rows, 0].numpy()
            save_image_grid(
                list(images),
                out / name,
                columns=len(images),
                labels=[f"{label} {i}" for i in range(len(images))],
                window=window,
                title=f"{label} images",
            )
            figures[f"{label} images"] = name
            continue
        titles = [f"{label} {i}" for i in range(min(grid_rows, len(vols)))]
        save_slice_grid(
            [v[0].numpy() for v in vols[:grid_rows]],
            out / name,
            spacing=spacing,
            titles=titles,
            window=window,
            title=f"{label} volumes: centre slices",
        )
        figures[f"{label} volumes: centre slices"] = name
    return figures


def write_report(
    result: dict,
    art: EvalArtifacts,
    out_dir: str | os.PathLike,
    grid_rows: int = 6,
    seed: int = 0,
    viewer_volumes: int = 4,
) -> Path:
    """Write metrics.json, the figures and ``report.html`` into ``out_dir``; return the HTML path.
    ``viewer_volumes``: generated and real volumes each in the page's interactive viewer (0: none)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out / "metrics.json", lambda p: p.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    )
    figures = _grids(art, result, out, grid_rows)
    view = "3d" if "3d" in art.features else next(iter(art.features), None)
    if view is not None and min(len(f) for f in art.features[view]) >= 3:
        real_f, fake_f = art.features[view]
        save_tsne(real_f, fake_f, out / "tsne.png", f"t-SNE of {view} features", seed)
        figures[f"t-SNE of real vs generated ({view} features)"] = "tsne.png"
    if any(k.startswith("fid") for k in result):
        save_fid_bars(result, out / "fid.png")
        figures["FID per view"] = "fid.png"
    page = out / "report.html"
    atomic_write(
        page,
        lambda p: p.write_text(
            _page(result, figures, viewer_html(art, result, viewer_volumes)), encoding="utf-8"
        ),
    )
    return page
