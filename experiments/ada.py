"""Adaptive discriminator augmentation on a small 3D training set: FID-avg and MS-SSIM with ADA and without.

Karras et al., "Training Generative Adversarial Networks with Limited Data" (NeurIPS 2020) show that on small
sets D memorises the reals and G's samples degrade, and that ADA recovers much of the loss. Here: the `tiny`
StyleGAN2 preset on a small training subset of the brain phantom (default 8 volumes at 16³), the same
seeds, batch and kimg for both rows; each generator scored on the same number of generated volumes against
a *fresh* population of phantoms (population seed 1, never trained on), so a model that copies its 8 training
volumes is not rewarded. FID-avg is the mean of the axial, sagittal and coronal slice FIDs (docs/evaluation.md);
MS-SSIM is over random pairs of generated volumes (diversity, lower = more diverse). A reference row scores
another fresh population (seed 2) the same way: what a generator that had learnt the distribution would get.
Writes OUT/ada.md and OUT/ada.csv.

    python experiments/ada.py --out experiments-out                       # CPU: about 15 min on one thread
    python experiments/ada.py --out experiments-out --seeds 0,1,2,3,4 --kimg 8 --ada-kimg 4
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import common

ROWS = {"none": "no augmentation (`--aug none`)", "ada": "ADA (`--aug ada`)"}
DEFAULT_KIMG = 4.0  # per run; with batch 8 that is 500 iterations
DEFAULT_ADA_KIMG = 2.0  # p can go 0 -> 1 in 2 kimg: short runs need a faster p than the paper's 500
METRICS = ("fid", "ms_ssim")


def small_dataset(ctx: common.Context, volumes: int) -> Path:
    """``volumes`` brain phantoms (population seed 0), all in the train split."""
    from medgan3d.data import make_brain_phantoms

    shape = ctx.scale.shape["brain"]
    root = ctx.out / "data" / f"brain-train{volumes}-{'x'.join(map(str, shape))}"
    if not (root / "dataset.json").is_file():
        make_brain_phantoms(volumes, root, seed=0, shape=shape, val_fraction=0.0)
    return root


def population(ctx: common.Context, seed: int, count: int) -> Path:
    """``count`` fresh brain phantoms of population ``seed`` (the scoring reference, or the floor row)."""
    from medgan3d.data import make_brain_phantoms

    shape = ctx.scale.shape["brain"]
    root = ctx.out / "data" / f"brain-population{seed}-{count}-{'x'.join(map(str, shape))}"
    if not (root / "dataset.json").is_file():
        make_brain_phantoms(count, root, seed=seed, shape=shape, val_fraction=0.0)
    return root


def run_spec(ctx: common.Context, data: Path, mode: str, seed: int, ada_kimg: float) -> common.RunSpec:
    from medgan3d.config import load_preset

    s = ctx.scale
    cfg = common.train_config(
        "tiny",
        kimg=s.kimg,
        batch=s.batch,
        batch_gpu=s.batch_gpu,
        seed=seed,
        aug=mode,
        ada_kimg=ada_kimg,
        tick_kimg=s.kimg / 4,
        snapshot_ticks=4,
    )
    return common.RunSpec(f"brain{data.name}/{mode}/s{seed}", data, load_preset("tiny").model, cfg, "tiny")


def scored(ctx: common.Context, spec: common.RunSpec, reference: Path) -> dict[str, Any]:
    """The final G_ema's scores against ``reference`` (cached in the run folder) and the run's last p."""
    from medgan3d.training.checkpoint import load_generator, resolve_checkpoint

    run = common.ensure_run(ctx, spec)
    ckpt = resolve_checkpoint(run)
    path = ckpt.parent / f"scores-ada-{ckpt.name}-{reference.name}-{ctx.scale.samples}.json"
    if not path.is_file():
        G = load_generator(ckpt, device=ctx.device or "cpu")
        scores = common.score(ctx, G, reference, spec.cfg.seed, METRICS)
        path.write_text(json.dumps(scores) + "\n", encoding="utf-8")
    scores = dict(json.loads(path.read_text(encoding="utf-8")))
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text(encoding="utf-8").splitlines()]
    scores["final_p"] = rows[-1].get("aug/p", 0.0)
    scores["final_rt"] = rows[-1].get("aug/rt", float("nan"))
    return scores


def floor(ctx: common.Context, reference: Path) -> dict[str, Any]:
    """A fresh population (seed 2) scored against the reference like a generator's samples."""
    from medgan3d.metrics import evaluate_volumes, scalars
    from medgan3d.metrics.inputs import load_real

    n = ctx.scale.samples
    fake = load_real(population(ctx, 2, n), list(range(n)))
    result = evaluate_volumes(
        fake,
        reference,
        metrics=METRICS,
        extractor_2d=ctx.extractor_2d,
        bootstrap=0,
        cache=ctx.out / "cache",
        device=ctx.device or "cpu",
    )
    return scalars(result)


def main(argv: list[str] | None = None) -> str:
    p = common.parser(__doc__)
    p.add_argument("--volumes", type=int, default=8, help="training volumes (brain phantoms)")
    p.add_argument(
        "--ada-kimg", type=float, default=DEFAULT_ADA_KIMG, help="ADA's p speed: 0 -> 1 in this kimg"
    )
    p.add_argument("--reference", type=int, default=64, help="fresh phantoms the scores compare against")
    args = p.parse_args(argv)
    if args.kimg is None:
        args.kimg = DEFAULT_KIMG
    started = time.perf_counter()
    ctx = common.context(args)
    data, reference = small_dataset(ctx, args.volumes), population(ctx, 1, args.reference)
    per_mode: dict[str, list[dict[str, Any]]] = {}
    records = []
    for mode in ROWS:
        per_mode[mode] = []
        for seed in ctx.seeds:
            scores = scored(ctx, run_spec(ctx, data, mode, seed, args.ada_kimg), reference)
            per_mode[mode].append(scores)
            records.append({"aug": mode, "seed": seed, **scores})
    rows = []
    for mode, label in ROWS.items():
        s = per_mode[mode]
        p_cell = common.cell([r["final_p"] for r in s], None, 2) if mode == "ada" else "–"
        rows.append(
            [
                label,
                common.cell([r["fid_avg"] for r in s], None, 2),
                common.cell([r["ms_ssim"] for r in s], None, 3),
                p_cell,
            ]
        )
    diff_fid = [a["fid_avg"] - b["fid_avg"] for a, b in zip(per_mode["ada"], per_mode["none"], strict=True)]
    diff_ms = [a["ms_ssim"] - b["ms_ssim"] for a, b in zip(per_mode["ada"], per_mode["none"], strict=True)]
    rows.append(
        ["ADA − none, paired by seed", common.cell(diff_fid, None, 2), common.cell(diff_ms, None, 3), ""]
    )
    ref = floor(ctx, reference)
    rows.append(
        [
            f"fresh phantoms, {ctx.scale.samples} (reference)",
            f"{ref['fid_avg']:.2f}",
            f"{ref['ms_ssim']:.3f}",
            "",
        ]
    )
    real_ms = per_mode["none"][0]["ms_ssim_real"]
    common.write_csv(ctx, "ada", records)
    s = ctx.scale
    note = (
        f"{args.volumes} training volumes of the brain phantom at {'×'.join(map(str, s.shape['brain']))}; "
        f"preset `tiny`, {s.kimg:g} kimg per run (batch {s.batch}), ADA target 0.6, p 0 → 1 in "
        f"{args.ada_kimg:g} kimg, preset `all`; {s.samples} generated volumes per score against "
        f"{args.reference} fresh phantoms (MS-SSIM between those real volumes: {real_ms:.3f}); seeds "
        f"{', '.join(map(str, ctx.seeds))}; cells are mean ± half-width of the 95 % t-interval over the seeds. "
        f"Extractor: {per_mode['none'][0]['extractor']}."
    )
    head = ["Training", "FID-avg ↓", "MS-SSIM ↓ (diversity)", "final p"]
    text = common.write_table(ctx, "ada", "ADA vs no augmentation on a small 3D set", head, rows, note)
    return common.finish(ctx, text, started)


if __name__ == "__main__":
    main()
