"""Table 4 of Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical Images"
(arXiv 2208.03934, §4.3.2): the architectures of Table 3 started from Inflate-1 of their own 2D twins.

For every architecture and seed its 2D twin is pretrained on every axial slice of the heart scans and scored
by FID-2D (its images against the real axial slices, the same 2D extractor); the 3D model then starts from
Inflate-1 of G and D and trains for the same budget as every row of every table. Writes OUT/table4.md and
OUT/table4.csv.

    python experiments/inflated_architectures.py --out experiments-out               # tiny: CPU, minutes
    python experiments/inflated_architectures.py --scale paper --data-heart data/coca --device cuda --out paper-out
"""

from __future__ import annotations

import time

import common

PAPER = {
    "Baseline": (0.600, 7.7, 60, 83, 76, 73.0),
    "Group-D": (0.434, 10.9, 78, 76, 76, 76.7),
    "Depthwise-D": (0.367, 14.0, 87, 129, 84, 100.0),
    "Split&Shuffle-D": (0.416, 10.6, 95, 112, 101, 102.7),
    "Split": (0.291, 12.2, 120, 144, 106, 123.3),
    "Split&Shuffle": (0.291, 11.6, 46, 66, 63, 58.3),
}


def main(argv: list[str] | None = None) -> str:
    args = common.parser(__doc__).parse_args(argv)
    started = time.perf_counter()
    ctx = common.context(args)
    rows, records = [], []
    for arch, paper in PAPER.items():
        twins = [common.pretrain_spec(ctx, "heart", arch, seed) for seed in ctx.seeds]
        fid_2d = [common.score_run(ctx, twin)["fid_2d"] for twin in twins]
        specs = [common.inflated_spec(ctx, "heart", arch, seed, "inflate-1", "GD") for seed in ctx.seeds]
        scores = [common.score_run(ctx, spec) for spec in specs]
        rows.append(
            [
                arch,
                common.params_cell(specs[0].model, paper[0]),
                common.cell(fid_2d, paper[1]),
                *common.fid_cells(scores, paper[2:]),
            ]
        )
        records += [
            {"model": arch, "seed": sp.cfg.seed, "fid_2d": f2, **sc}
            for sp, f2, sc in zip(specs, fid_2d, scores, strict=True)
        ]
    common.write_csv(ctx, "table4", records)
    note = common.footer(
        ctx,
        records[0]["extractor"],
        "Inflate-1 of G and D from each seed's 2D twin, "
        f"pretrained for {ctx.scale.pretrain_kimg:g} kimg on every axial slice of the train "
        "scans; FID-2D: its images vs the real axial slices.",
    )
    head = ["Model", "#param", "FID-2D", "FID-ax", "FID-sag", "FID-cor", "FID-avg"]
    text = common.write_table(
        ctx, "table4", "Table 4: architectures with Inflate-1 (heart)", head, rows, note
    )
    return common.finish(ctx, text, started)


if __name__ == "__main__":
    main()
