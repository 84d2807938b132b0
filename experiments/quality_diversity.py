"""Table 8 of Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical Images"
(arXiv 2208.03934, §4.4): PSNR (generation quality, higher is better) and MS-SSIM over pairs of generated volumes
(diversity, lower is better) of the methods of Tables 6–7, on the heart and brain data.

The runs are those of `methods.py` (reused when it ran with the same --out; trained here otherwise). PSNR is
each generated volume against its nearest real volume, MS-SSIM the mean over random pairs
(docs/evaluation.md); the real volumes' own MS-SSIM is the reference row. Writes OUT/table8.md and .csv.

    python experiments/quality_diversity.py --out experiments-out                # tiny: CPU, minutes
    python experiments/quality_diversity.py --scale paper --data-heart data/coca --data-brain data/adni \\
        --device cuda --out paper-out
"""

from __future__ import annotations

import time

import common
from methods import METHODS, method_spec

# COCA PSNR, COCA MS-SSIM, ADNI PSNR, ADNI MS-SSIM
PAPER = {
    "3D-WGAN-GP": (16.22, 0.9988, 27.11, 0.9945),
    "3D-VAE-GAN": (16.38, 0.8436, 27.03, 0.9719),
    "3D-α-GAN": (16.19, 0.8288, 27.42, 0.8750),
    "3D-α-WGAN-GP": (15.82, 0.7916, 27.71, 0.8678),
    "3D-StyleGAN2": (16.04, 0.8362, 27.80, 0.8999),
    "Split&Shuffle (Ours)": (16.56, 0.7513, 28.57, 0.8488),
}
METRICS = ("psnr", "ms_ssim")


def main(argv: list[str] | None = None) -> str:
    p = common.parser(__doc__)
    p.add_argument("--datasets", default="heart,brain", help="heart (COCA columns), brain (ADNI) or both")
    args = p.parse_args(argv)
    started = time.perf_counter()
    ctx = common.context(args)
    kinds = args.datasets.split(",")
    rows, records, real = [], [], {k: [] for k in kinds}
    for name in METHODS:
        row = [name]
        for kind in kinds:
            specs = [method_spec(ctx, kind, name, seed) for seed in ctx.seeds]
            scores = [common.score_run(ctx, spec, METRICS) for spec in specs]
            paper = PAPER[name][2 * common.KINDS.index(kind) :][:2]
            row += [
                common.cell([s["psnr"] for s in scores], paper[0], 2),
                common.cell([s["ms_ssim"] for s in scores], paper[1], 4),
            ]
            real[kind] += [s["ms_ssim_real"] for s in scores]
            records += [
                {"model": name, "data": kind, "seed": sp.cfg.seed, **sc}
                for sp, sc in zip(specs, scores, strict=True)
            ]
        rows.append(row)
    rows.append(
        ["Real volumes (reference)", *[c for k in kinds for c in ("–", common.cell(real[k], None, 4))]]
    )
    common.write_csv(ctx, "table8", records)
    names = {"heart": "heart (COCA)", "brain": "brain (ADNI)"}
    head = ["Model", *[f"{names[k]} {m}" for k in kinds for m in ("PSNR ↑", "MS-SSIM ↓")]]
    note = common.footer(ctx, "none (pixel metrics)")
    text = common.write_table(ctx, "table8", "Table 8: PSNR and MS-SSIM", head, rows, note)
    return common.finish(ctx, text, started)


if __name__ == "__main__":
    main()
