"""Table 3 of Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical Images"
(arXiv 2208.03934, §3.3, §4.3.2): the parameter-efficient architectures trained from scratch.

Baseline (3D StyleGAN2), Group-D, Depthwise-D, Split&Shuffle-D, Split and Split&Shuffle, each trained on the
heart data for the same budget over every seed and scored with the same extractor and sample count. Writes
OUT/table3.md (mean ± 95 % t-interval over seeds, the paper's numbers in parentheses; #param: ours, the
paper's) and OUT/table3.csv (one line per run).

    python experiments/architectures.py --out experiments-out                    # tiny: CPU, minutes
    python experiments/architectures.py --scale paper --data-heart data/coca --device cuda --out paper-out
"""

from __future__ import annotations

import time

import common

PAPER = {
    "Baseline": (0.600, 104, 92, 112, 102.7),
    "Group-D": (0.434, 80, 130, 105, 105.0),
    "Depthwise-D": (0.367, 67, 136, 117, 106.7),
    "Split&Shuffle-D": (0.416, 84, 121, 118, 107.7),
    "Split": (0.291, 109, 151, 146, 135.3),
    "Split&Shuffle": (0.291, 85, 113, 91, 96.3),
}


def main(argv: list[str] | None = None) -> str:
    args = common.parser(__doc__).parse_args(argv)
    started = time.perf_counter()
    ctx = common.context(args)
    rows, records = [], []
    for arch, paper in PAPER.items():
        specs = [common.stylegan_spec(ctx, "heart", arch, seed) for seed in ctx.seeds]
        scores = [common.score_run(ctx, spec) for spec in specs]
        rows.append(
            [arch, common.params_cell(specs[0].model, paper[0]), *common.fid_cells(scores, paper[1:])]
        )
        records += [{"model": arch, "seed": sp.cfg.seed, **sc} for sp, sc in zip(specs, scores, strict=True)]
    common.write_csv(ctx, "table3", records)
    note = common.footer(ctx, records[0]["extractor"], "From scratch.")
    text = common.write_table(
        ctx,
        "table3",
        "Table 3: architectures trained from scratch (heart)",
        ["Model", "#param", "FID-ax", "FID-sag", "FID-cor", "FID-avg"],
        rows,
        note,
    )
    return common.finish(ctx, text, started)


if __name__ == "__main__":
    main()
