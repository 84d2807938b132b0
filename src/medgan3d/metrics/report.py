"""Evaluation report: metrics.json, PNG figures and one HTML page (issue 6, item 3).

Figures: real and generated centre-slice grids (:func:`medgan3d.viz.save_slice_grid`), a t-SNE of real vs
generated features (seed 001 Figs. 7–8), and a bar chart of the slice FIDs. The HTML page shows them with
the metric table (95% bootstrap intervals where the sample count allowed) and the full provenance.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from medgan3d.metrics.evaluate import SCORE_KEYS, SCORE_KEYS_2D, EvalArtifacts
from medgan3d.modeling import atomic_write
from medgan3d.viz import save_slice_grid

DIRECTION = {
    "psnr": "higher is better",
    "is": "higher is better (depends entirely on the classifier)",
    "ms_ssim": "lower = more diverse",
    "ms_ssim_real": "real-data reference",
}


def _plt():
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


def _save(fig, path: Path) -> Path:
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


def save_image_row(images: np.ndarray, path: Path, title: str) -> Path:
    """2D images ``[n, H, W]`` in [-1, 1] side by side (a 2D twin's samples or real axial slices)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(images), figsize=(1.6 * len(images), 1.9), squeeze=False)
    for ax, img in zip(axes[0], images, strict=True):
        ax.imshow(img[::-1], cmap="gray", vmin=-1, vmax=1)  # superior/anterior up, as save_slice_grid
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=8)
    return _save(fig, path)


def save_fid_bars(result: dict, path: Path) -> Path:
    keys = [k for k in ("fid_ax", "fid_sag", "fid_cor", "fid_avg", "fid_3d", "fid_2d") if k in result]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    vals = [result[k] for k in keys]
    err = [[v - result["ci95"].get(k, [v, v])[0] for k, v in zip(keys, vals, strict=True)],
           [result["ci95"].get(k, [v, v])[1] - v for k, v in zip(keys, vals, strict=True)]]  # fmt: skip
    ax.bar(keys, vals, yerr=np.clip(err, 0, None), capsize=4, color="#4c72b0")
    ax.set_ylabel("FID (lower is better)")
    fig.tight_layout()
    return _save(fig, path)


def _table(result: dict) -> str:
    rows = []
    for key in (*SCORE_KEYS, *SCORE_KEYS_2D, "is", "ms_ssim_real"):
        if key not in result:
            continue
        ci = result["ci95"].get(key)
        ci_text = f"[{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "—"
        note = DIRECTION.get(key, "lower is better")
        rows.append(f"<tr><td>{key}</td><td>{result[key]:.4g}</td><td>{ci_text}</td><td>{note}</td></tr>")
    return (
        "<table><tr><th>metric</th><th>value</th><th>95% CI</th><th></th></tr>" + "".join(rows) + "</table>"
    )


def _page(result: dict, figures: dict[str, str]) -> str:
    prov = result["provenance"]
    ext = "; ".join(f"{k}: {v['extractor']} ({v['weights']})" for k, v in prov["extractors"].items())
    imgs = "".join(
        f"<figure><img src='{html.escape(name)}' alt='{html.escape(cap)}'><figcaption>{html.escape(cap)}"
        "</figcaption></figure>"
        for cap, name in figures.items()
    )
    details = html.escape(json.dumps({"details": result["details"], "provenance": prov}, indent=1))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>medgan3d evaluation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:4px 10px}}figure{{display:inline-block;margin:8px;vertical-align:top}}img{{max-width:560px}}</style>
</head><body><h1>medgan3d evaluation</h1>
<p>{prov["num_fake"]} generated vs {prov["num_real"]} real {prov.get("unit", "volumes")} ({html.escape(prov["real_split"])} split) of
{html.escape(prov["dataset"])}, resolution {prov["resolution"]}, intensities {prov["intensity_range"]};
{prov["slices"]} slices. Extractors: {html.escape(ext)}.</p>
{_table(result)}
<p>MS-SSIM: pairs of generated volumes (diversity). PSNR: each generated volume vs its nearest real volume.
Scores from a random extractor rank models on this machine only; they are not comparable to published FIDs.</p>
{imgs}
<h2>Details and provenance</h2><pre>{details}</pre></body></html>
"""


def write_report(
    result: dict, art: EvalArtifacts, out_dir: str | os.PathLike, grid_rows: int = 6, seed: int = 0
) -> Path:
    """Write metrics.json, the figures and ``report.html`` into ``out_dir``; return the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(
        out / "metrics.json", lambda p: p.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    )
    figures = {}
    for label, vols in (("real volumes", art.real), ("generated volumes", art.fake)):
        name = f"{label.split()[0]}_slices.png"
        if vols.ndim == 4:  # 2D images
            save_image_row(vols[: 2 * grid_rows, 0].numpy(), out / name, label.replace("volumes", "images"))
            figures[label.replace("volumes", "images")] = name
            continue
        save_slice_grid([v[0].numpy() for v in vols[:grid_rows]], out / name)
        figures[f"{label}: centre slices"] = name
    view = "3d" if "3d" in art.features else next(iter(art.features), None)
    if view is not None and min(len(f) for f in art.features[view]) >= 3:
        real_f, fake_f = art.features[view]
        save_tsne(real_f, fake_f, out / "tsne.png", f"t-SNE of {view} features", seed)
        figures[f"t-SNE of real vs generated ({view} features)"] = "tsne.png"
    if any(k.startswith("fid") for k in result):
        save_fid_bars(result, out / "fid.png")
        figures["FID per view"] = "fid.png"
    page = out / "report.html"
    atomic_write(page, lambda p: p.write_text(_page(result, figures), encoding="utf-8"))
    return page
