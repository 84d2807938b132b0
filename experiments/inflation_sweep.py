"""Tables 1–2 and Fig. 4 of Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D
Medical Images" (arXiv 2208.03934, §4.3.1): inflation strategy × inflated parts.

For each seed, the Baseline architecture's 2D twin is pretrained on every axial slice of the heart scans, then
each row trains the 3D model for the same budget from it: No Inflate (from scratch), Inflate-1/-2/-3/-ASC/-NWI
of G and D (Table 1), and Inflate-1/-ASC/-NWI of G only and D only (Table 2). Every row is scored at kimg 0
and at every snapshot with the same extractor and sample count. Writes

    OUT/table1.md, OUT/table2.md   final FIDs, mean ± 95 % t-interval over seeds, the paper's in parentheses
    OUT/results.csv                strategy, parts, seed, kimg, fid_ax, fid_sag, fid_cor, fid_avg, extractor
    OUT/fid_vs_kimg.png            mean FID-avg vs kimg, one panel per inflated part (Fig. 4)

    python experiments/inflation_sweep.py --out experiments-out                  # tiny: CPU, minutes
    python experiments/inflation_sweep.py --scale paper --data-heart data/coca --device cuda --out paper-out

``--ckpt-2d`` starts every seed from one given 2D checkpoint (the paper's "same pre-trained 2D weights");
``--equalized-lr stored`` applies Eq. 3–7 to the stored tensors instead (docs/inflation.md). Scores are
labelled with their extractor: offline a seeded random CNN stands in for InceptionV3 and ranks rows on this
machine only.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import common

STRATEGIES = ("none", "inflate-1", "inflate-2", "inflate-3", "inflate-asc", "inflate-nwi")
TABLE2 = ("inflate-1", "inflate-asc", "inflate-nwi")  # the three best, inflated in G only and D only
LABELS = {
    "none": "No Inflate",
    "inflate-1": "Inflate-1",
    "inflate-2": "Inflate-2",
    "inflate-3": "Inflate-3",
    "inflate-asc": "Inflate-ASC",
    "inflate-nwi": "Inflate-NWI",
}
PAPER_T1 = {
    "none": (104, 92, 112, 102.7),
    "inflate-1": (60, 83, 76, 73.0),
    "inflate-2": (68, 133, 110, 103.7),
    "inflate-3": (89, 119, 110, 106.0),
    "inflate-asc": (79, 108, 83, 90.0),
    "inflate-nwi": (85, 87, 83, 85.0),
}
PAPER_T2 = {
    ("inflate-1", "G"): (105, 82, 88, 91.7),
    ("inflate-1", "D"): (85, 94, 104, 94.3),
    ("inflate-asc", "G"): (93, 96, 94, 94.3),
    ("inflate-asc", "D"): (123, 113, 127, 121.0),
    ("inflate-nwi", "G"): (85, 91, 94, 90.0),
    ("inflate-nwi", "D"): (90, 92, 98, 93.3),
}
PAPER_T2 |= {(s, "GD"): PAPER_T1[s] for s in TABLE2}
ARCH = "Baseline"  # Tables 1–2 inflate the 3D StyleGAN2 baseline (their No Inflate row is Table 3's Baseline)


def combos(strategies: list[str], parts: str) -> list[tuple[str, str]]:
    """(strategy, parts) rows: ``auto`` is Tables 1–2 (GD for all, G and D for TABLE2); else every part for
    every strategy. ``none`` is one row (nothing is inflated)."""
    rows = [("none", "GD")] if "none" in strategies else []
    for s in (s for s in strategies if s != "none"):
        chosen = (["GD", "G", "D"] if s in TABLE2 else ["GD"]) if parts == "auto" else parts.split(",")
        rows += [(s, p) for p in chosen]
    return rows


def spec_for(
    ctx: common.Context, strategy: str, parts: str, seed: int, ckpt_2d: Path | None
) -> common.RunSpec:
    spec = common.inflated_spec(ctx, "heart", ARCH, seed, strategy, parts)
    if ckpt_2d is None or spec.init is None:
        return spec
    return dataclasses.replace(spec, init=dataclasses.replace(spec.init, pretrain=ckpt_2d))


def curve(ctx: common.Context, spec: common.RunSpec, strategy: str, parts: str) -> list[dict]:
    """FIDs at kimg 0 (the start it was given) and at every snapshot of the run."""
    from medgan3d.training.checkpoint import list_checkpoints

    run = common.ensure_run(ctx, spec)
    key = {"strategy": strategy, "parts": parts, "seed": spec.cfg.seed}
    start = common.score_start(ctx, spec)
    rows = [key | {"kimg": 0.0} | {k: start[k] for k in (*common.FIDS, "extractor")}]
    for ckpt in list_checkpoints(run):
        scores = common.score_run(ctx, spec, checkpoint=ckpt)
        rows.append(
            key
            | {"kimg": int(ckpt.name.split("-")[-1]) / 1000}
            | {k: scores[k] for k in (*common.FIDS, "extractor")}
        )
    return rows


def finals(rows: list[dict], strategy: str, parts: str, at: float) -> dict[str, list[float]]:
    """Per FID, the values at kimg ``at`` over the seeds."""
    mine = [
        r for r in rows if (r["strategy"], r["parts"]) == (strategy, parts) and abs(r["kimg"] - at) < 1e-9
    ]
    return {k: [float(r[k]) for r in mine] for k in common.FIDS}


def tables(ctx: common.Context, rows: list[dict], runs: list[tuple[str, str]], note: str) -> str:
    kimg = ctx.scale.kimg
    t1, t2 = [], []
    for s, p in runs:
        f, f0 = finals(rows, s, p, kimg), finals(rows, s, p, 0.0)
        if p == "GD":
            paper = PAPER_T1[s]
            t1.append(
                [
                    LABELS[s],
                    *(common.cell(f[k], v) for k, v in zip(common.FIDS, paper, strict=True)),
                    common.cell(f0["fid_avg"]),
                ]
            )
        if s in TABLE2:
            paper = PAPER_T2.get((s, p))
            t2.append(
                [
                    LABELS[s],
                    {"GD": "G&D"}.get(p, p),
                    *(common.cell(f[k], paper[i] if paper else None) for i, k in enumerate(common.FIDS)),
                ]
            )
    head = ["Model", "FID-ax", "FID-sag", "FID-cor", "FID-avg", "FID-avg at kimg 0"]
    text = common.write_table(
        ctx, "table1", "Table 1: inflation variants (heart, Baseline architecture)", head, t1, note
    )
    head2 = ["Model", "Module", "FID-ax", "FID-sag", "FID-cor", "FID-avg"]
    return (
        text
        + "\n"
        + common.write_table(ctx, "table2", "Table 2: inflation on G, D and both", head2, t2, note)
    )


def plot(ctx: common.Context, rows: list[dict]) -> None:
    """Mean FID-avg over seeds vs kimg, one panel per inflated part (Fig. 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = sorted({r["parts"] for r in rows if r["strategy"] != "none"}) or ["GD"]
    fig, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 4), squeeze=False, sharey=True)
    for ax, part in zip(axes[0], parts, strict=True):
        for s in dict.fromkeys(r["strategy"] for r in rows):
            pts = [r for r in rows if r["strategy"] == s and (r["parts"] == part or s == "none")]
            kimgs = sorted({r["kimg"] for r in pts})
            means = [common.mean_ci([r["fid_avg"] for r in pts if r["kimg"] == k])[0] for k in kimgs]
            ax.plot(kimgs, means, marker="o", label=LABELS[s])
        ax.set_title(f"inflated part: {part}")
        ax.set_xlabel("kimg")
    axes[0, 0].set_ylabel("FID-avg, mean over seeds (lower is better)")
    axes[0, -1].legend()
    fig.suptitle(f"extractor: {rows[0]['extractor']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.out / "fid_vs_kimg.png", dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> str:
    p = common.parser(__doc__)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--parts", default="auto", help="auto (Tables 1–2) or a comma list of G, D, GD")
    p.add_argument(
        "--ckpt-2d", type=Path, help="one 2D run/checkpoint for every seed (default: pretrain each)"
    )
    args = p.parse_args(argv)
    started = time.perf_counter()
    ctx = common.context(args)
    runs = combos(args.strategies.split(","), args.parts)
    rows: list[dict] = []
    for seed in ctx.seeds:
        for strategy, parts in runs:
            rows += curve(ctx, spec_for(ctx, strategy, parts, seed, args.ckpt_2d), strategy, parts)
            common.write_csv(ctx, "results", rows)  # partial results survive an interruption
    plot(ctx, rows)
    start = "one given 2D checkpoint" if args.ckpt_2d else "each seed's own 2D twin"
    note = common.footer(
        ctx, rows[0]["extractor"], f"Inflated rows start from {start}; FIDs at the end of training."
    )
    return common.finish(ctx, tables(ctx, rows, runs, note), started)


if __name__ == "__main__":
    main()
