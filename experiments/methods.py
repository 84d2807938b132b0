"""Tables 6–7 of Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical Images"
(arXiv 2208.03934, §4.4): Split&Shuffle against the published 3D GANs, on the heart (Table 6, COCA) and the brain
(Table 7, ADNI) data.

Rows: 3D-WGAN-GP, 3D-VAE-GAN, 3D-α-GAN, 3D-α-WGAN-GP (docs/baselines.md; their presets' own batch and losses),
3D-StyleGAN2 (the Baseline architecture from scratch) and Split&Shuffle (Inflate-1 of its 2D twin), every one
trained for the same number of real volumes (kimg) over every seed and scored with the same extractor and
sample count. Writes OUT/table6.md, OUT/table7.md and their .csv.

    python experiments/methods.py --out experiments-out                          # tiny: CPU, minutes
    python experiments/methods.py --scale paper --data-heart data/coca --data-brain data/adni --device cuda \\
        --out paper-out
"""

from __future__ import annotations

import time

import common

# name -> how it is built: a baseline family, or a StyleGAN2 architecture from scratch / inflated
METHODS = {
    "3D-WGAN-GP": ("family", "wgan-gp"),
    "3D-VAE-GAN": ("family", "vae-gan"),
    "3D-α-GAN": ("family", "alpha-gan"),
    "3D-α-WGAN-GP": ("family", "alpha-wgan-gp"),
    "3D-StyleGAN2": ("scratch", "Baseline"),
    "Split&Shuffle (Ours)": ("inflated", "Split&Shuffle"),
}
PAPER = {  # #param (M), FID-ax, FID-sag, FID-cor, FID-avg
    "heart": {
        "3D-WGAN-GP": (1.399, 191, 223, 191, 201.7),
        "3D-VAE-GAN": (6.389, 196, 281, 272, 249.7),
        "3D-α-GAN": (2.811, 91, 88, 80, 86.3),
        "3D-α-WGAN-GP": (2.811, 70, 86, 69, 75.0),
        "3D-StyleGAN2": (0.600, 104, 92, 112, 102.7),
        "Split&Shuffle (Ours)": (0.291, 46, 66, 63, 58.3),
    },
    "brain": {
        "3D-WGAN-GP": (1.817, 161, 161, 231, 184.3),
        "3D-VAE-GAN": (11.001, 167, 122, 224, 171.0),
        "3D-α-GAN": (3.635, 73, 77, 99, 83.0),
        "3D-α-WGAN-GP": (3.635, 74, 72, 87, 77.7),
        "3D-StyleGAN2": (0.633, 114, 89, 99, 100.7),
        "Split&Shuffle (Ours)": (0.325, 65, 67, 82, 71.3),
    },
}
TABLE = {
    "heart": ("table6", "Table 6: comparison with the published 3D GANs (heart)"),
    "brain": ("table7", "Table 7: comparison with the published 3D GANs (brain)"),
}


def method_spec(ctx: common.Context, kind: str, name: str, seed: int) -> common.RunSpec:
    """The run of method ``name`` on ``kind`` for ``seed`` (shared with Tables 3, 4 and 8)."""
    how, what = METHODS[name]
    if how == "family":
        return common.baseline_spec(ctx, kind, what, seed)
    if how == "scratch":
        return common.stylegan_spec(ctx, kind, what, seed)
    return common.inflated_spec(ctx, kind, what, seed, "inflate-1", "GD")


def table(ctx: common.Context, kind: str) -> str:
    rows, records = [], []
    for name, paper in PAPER[kind].items():
        specs = [method_spec(ctx, kind, name, seed) for seed in ctx.seeds]
        scores = [common.score_run(ctx, spec) for spec in specs]
        rows.append(
            [name, common.params_cell(specs[0].model, paper[0]), *common.fid_cells(scores, paper[1:])]
        )
        records += [{"model": name, "seed": sp.cfg.seed, **sc} for sp, sc in zip(specs, scores, strict=True)]
    floor = common.heldout_floor(ctx, kind)
    if floor is not None:
        rows.append(["Fresh phantoms (reference)", "–", *common.fid_cells([floor])])
        records.append({"model": "fresh phantoms", "seed": "", **floor})
    name, title = TABLE[kind]
    common.write_csv(ctx, name, records)
    extra = (
        " Reference: as many fresh phantoms of another population seed, i.e. a perfect generator."
        if floor
        else ""
    )
    note = common.footer(
        ctx,
        records[0]["extractor"],
        f"Baselines at their presets' batch and losses; #param counts every network.{extra}",
    )
    head = ["Model", "#param", "FID-ax", "FID-sag", "FID-cor", "FID-avg"]
    return common.write_table(ctx, name, title, head, rows, note)


def main(argv: list[str] | None = None) -> str:
    p = common.parser(__doc__)
    p.add_argument("--datasets", default="heart,brain", help="heart (Table 6), brain (Table 7) or both")
    args = p.parse_args(argv)
    started = time.perf_counter()
    ctx = common.context(args)
    return common.finish(ctx, "\n".join(table(ctx, kind) for kind in args.datasets.split(",")), started)


if __name__ == "__main__":
    main()
