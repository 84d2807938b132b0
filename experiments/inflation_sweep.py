"""Small-scale twin of seed 001 Tables 1–2 and Fig. 4: inflation strategy × inflated parts.

From ONE 2D checkpoint, train {none, inflate-1, inflate-2, inflate-3, inflate-asc, inflate-nwi} × {G, D, GD}
(``none`` once) for the same budget, score slice FIDs at kimg 0 and at every snapshot, and write

    OUT/results.csv    strategy, parts, kimg, fid_ax, fid_sag, fid_cor, fid_avg, extractor
    OUT/fid_vs_kimg.png  FID-avg vs kimg, one panel per inflated part (Fig. 4)
    OUT/table.md       best FID-avg per run (Tables 1–2)

CPU, minutes (the default; makes its own phantom data and 2D checkpoint when not given):

    python experiments/inflation_sweep.py --out experiments-out

Paper scale on a GPU, by flags alone:

    python experiments/inflation_sweep.py --data data/coca --config coca-ss --ckpt-2d runs/00000-coca-ss-2d \\
        --kimg 5000 --snap-kimg 200 --batch 128 --batch-gpu 32 --samples 2000 --device cuda --extractor-2d inception

Scores are labelled with the feature extractor that made them: offline, a seeded random CNN stands in for
InceptionV3 and the absolute numbers are not comparable with the paper's; the ranking is the point.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

STRATEGIES = ("none", "inflate-1", "inflate-2", "inflate-3", "inflate-asc", "inflate-nwi")
FIDS = ("fid_ax", "fid_sag", "fid_cor", "fid_avg")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("experiments-out"))
    p.add_argument("--config", default="tiny", help="3D preset (the 2D checkpoint must be its twin)")
    p.add_argument("--data", type=Path, help="prepared dataset (default: a brain phantom made here)")
    p.add_argument("--ckpt-2d", type=Path, help="2D run/checkpoint (default: pretrained here)")
    p.add_argument("--pretrain-kimg", type=float, default=2.0)
    p.add_argument("--kimg", type=float, default=0.4, help="3D training budget of every run")
    p.add_argument("--snap-kimg", type=float, default=0.2, help="score every this many kimg")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batch-gpu", type=int, default=4)
    p.add_argument("--samples", type=int, default=24, help="generated volumes per score")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--parts", default="G,D,GD")
    p.add_argument("--extractor-2d", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    return p.parse_args()


def ensure_inputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The dataset and the 2D checkpoint, made here (phantom + short pretraining) when not given."""
    from medgan3d.config import load_preset
    from medgan3d.data import make_brain_phantoms
    from medgan3d.training.loop import TrainConfig, train

    model = load_preset(args.config).model
    data = args.data
    if data is None:
        data = args.out / "data"
        if not (data / "dataset.json").is_file():
            make_brain_phantoms(48, data, seed=args.seed, shape=model.output_shape[1:])
    ckpt = args.ckpt_2d
    if ckpt is None:
        cfg = TrainConfig(kimg=args.pretrain_kimg, batch=16, batch_gpu=8, tick_kimg=args.pretrain_kimg,
                          seed=args.seed)  # fmt: skip
        existing = sorted((args.out / "runs").glob("*-pretrain-2d"))
        ckpt = existing[-1] if existing else train(data, model.twin_2d(), cfg, args.out / "runs", "pretrain-2d",
                                                   device=args.device)  # fmt: skip
    return data, ckpt


def score(G, data: Path, args: argparse.Namespace) -> tuple[dict[str, float], str]:  # type: ignore[no-untyped-def]
    from medgan3d.metrics import evaluate_generator

    result = evaluate_generator(G, data, num_samples=args.samples, metrics=("fid",), seed=args.seed,
                                extractor_2d=args.extractor_2d, bootstrap=0)  # fmt: skip
    ext = result["provenance"]["extractors"]
    label = "; ".join(f"{e['extractor']} ({e['weights']})" for e in ext.values())
    return {k: float(result[k]) for k in FIDS}, label


def run_one(strategy: str, parts: str, data: Path, ckpt: Path, args: argparse.Namespace) -> list[dict]:
    from medgan3d.config import load_preset
    from medgan3d.inflate import inflate_checkpoint
    from medgan3d.training.loop import TrainConfig, train

    model = load_preset(args.config).model
    nets = inflate_checkpoint(ckpt, model, strategy, parts=parts, seed=args.seed)
    scores, label = score(nets["G_ema"], data, args)
    rows = [{"strategy": strategy, "parts": parts, "kimg": 0.0, **scores, "extractor": label}]
    cfg = TrainConfig(kimg=args.kimg, batch=args.batch, batch_gpu=args.batch_gpu, tick_kimg=args.snap_kimg,
                      snapshot_ticks=1, seed=args.seed, metrics=("fid",), metrics_samples=args.samples)  # fmt: skip
    run = train(data, model, cfg, args.out / "runs", f"{strategy}-{parts}", init=nets,
                init_info={"from": str(ckpt), "strategy": strategy, "parts": parts}, preset=args.config,
                device=args.device)  # fmt: skip
    for line in (run / "stats.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if "metrics/fid_avg" in rec:
            rows.append({"strategy": strategy, "parts": parts, "kimg": rec["kimg"],
                         **{k: rec[f"metrics/{k}"] for k in FIDS}, "extractor": label})  # fmt: skip
    return rows


def write_outputs(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    parts = sorted({r["parts"] for r in rows if r["strategy"] != "none"}) or ["-"]
    fig, axes = plt.subplots(1, len(parts), figsize=(5 * len(parts), 4), squeeze=False, sharey=True)
    for ax, part in zip(axes[0], parts, strict=True):
        for strategy in dict.fromkeys(r["strategy"] for r in rows):
            pts = [
                r for r in rows if r["strategy"] == strategy and (r["parts"] == part or strategy == "none")
            ]
            if pts:
                ax.plot([r["kimg"] for r in pts], [r["fid_avg"] for r in pts], marker="o", label=strategy)
        ax.set_title(f"inflated part: {part}")
        ax.set_xlabel("kimg")
    axes[0, 0].set_ylabel("FID-avg (lower is better)")
    axes[0, -1].legend()
    fig.suptitle(f"extractor: {rows[0]['extractor']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fid_vs_kimg.png", dpi=100)
    lines = ["| strategy | parts | FID-avg at kimg 0 | best FID-avg | at kimg |", "|---|---|---:|---:|---:|"]
    for key in dict.fromkeys((r["strategy"], r["parts"]) for r in rows):
        pts = [r for r in rows if (r["strategy"], r["parts"]) == key]
        best = min(pts, key=lambda r: r["fid_avg"])
        lines.append(
            f"| {key[0]} | {key[1]} | {pts[0]['fid_avg']:.1f} | {best['fid_avg']:.1f} | {best['kimg']:.2f} |"
        )
    lines.append(f"\nextractor: {rows[0]['extractor']}")
    (out / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data, ckpt = ensure_inputs(args)
    strategies = args.strategies.split(",")
    combos = [(s, p) for s in strategies for p in args.parts.split(",") if s != "none"]
    if "none" in strategies:
        combos.insert(0, ("none", "GD"))
    rows: list[dict] = []
    for strategy, parts in combos:
        rows += run_one(strategy, parts, data, ckpt, args)
        write_outputs(rows, args.out)  # partial results survive an interrupted sweep
    print((args.out / "table.md").read_text(encoding="utf-8"))
    print(f"results: {args.out / 'results.csv'}  plot: {args.out / 'fid_vs_kimg.png'}")


if __name__ == "__main__":
    main()
