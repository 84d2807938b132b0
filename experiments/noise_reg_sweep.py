"""How much of a StyleGAN2 projection the noise maps carry, as a function of the noise regulariser's weight.

Karras et al. (CVPR 2020, App. D) weigh the regulariser 1e5 against LPIPS; Hong et al.'s 3D-StyleGAN projector
computes it and never adds it. This sweep projects held-out volumes of a prepared dataset with a trained run
for each weight and scores the reconstruction with the optimised noise and with the noise off: the gap is
what the noise maps carry rather than the latent.

    python experiments/noise_reg_sweep.py --run RUN --data DATA --out OUT [--weights 0,1e2,1e3,1e5]

Writes ``results.csv`` (one row per weight and volume) and ``table.md`` (means per weight).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

import torch

from medgan3d.latents import load_stylegan, noise_layers
from medgan3d.project import ProjectorConfig, dataset_targets, final_scores, project_volume, w_statistics
from medgan3d.project.stylegan import noise_regularizer

FIELDS = ("weight", "item", "psnr_db", "ssim", "psnr_db_noise_off", "ssim_noise_off", "noise_reg")


def sweep(args: argparse.Namespace) -> list[dict[str, float | str]]:
    G = load_stylegan(args.run)
    if args.noise_strength is not None:  # a stress test: a generator whose noise inputs matter
        for layer in noise_layers(G):
            layer.noise_strength.fill_(args.noise_strength)
    targets, _ = dataset_targets(args.data, args.split, args.limit)
    base = ProjectorConfig.named(args.loss, steps=args.steps, snapshots=0, w_avg_samples=args.w_avg_samples)
    stats = w_statistics(G, base.w_avg_samples, base.w_avg_seed)
    rows: list[dict[str, float | str]] = []
    for weight in (float(w) for w in args.weights.split(",")):
        cfg = dataclasses.replace(base, noise_reg=weight)
        for target in targets:
            x = torch.from_numpy(target.volume)[None, None]
            proj = project_volume(G, x, cfg, stats)
            scores, _ = final_scores(G, proj, x)
            rec, off = scores["reconstruction"], scores["noise_off"]
            rows.append(
                {
                    "weight": weight,
                    "item": target.name,
                    "psnr_db": rec["psnr_db"],
                    "ssim": rec["ssim"],
                    "psnr_db_noise_off": off["psnr_db"],
                    "ssim_noise_off": off["ssim"],
                    "noise_reg": float(noise_regularizer(proj.noise or [torch.zeros(1)])),
                }
            )
            print(rows[-1], flush=True)
    return rows


def write(rows: list[dict[str, float | str]], out: Path, args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    strength = "" if args.noise_strength is None else f", every noise strength set to {args.noise_strength:g}"
    lines = [
        f"Projection of {args.limit} {args.split} volumes, {args.steps} steps, loss {args.loss}, W space{strength}.",
        "",
        "| noise_reg | PSNR (dB) | SSIM | PSNR noise off | SSIM noise off | gap (dB) | final reg |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for weight in dict.fromkeys(r["weight"] for r in rows):
        sel = [r for r in rows if r["weight"] == weight]

        def mean(key: str, sel: list[dict[str, float | str]] = sel) -> float:
            return sum(float(r[key]) for r in sel) / len(sel)

        gap = mean("psnr_db") - mean("psnr_db_noise_off")
        lines.append(
            f"| {weight:g} | {mean('psnr_db'):.2f} | {mean('ssim'):.3f} | {mean('psnr_db_noise_off'):.2f} | "
            f"{mean('ssim_noise_off'):.3f} | {gap:.2f} | {mean('noise_reg'):.2e} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--loss", default="mse-ssim")
    parser.add_argument("--weights", default="0,1e1,1e2,1e3,1e4,1e5")
    parser.add_argument("--w-avg-samples", type=int, default=10_000)
    parser.add_argument(
        "--noise-strength", type=float, default=None, help="Set every layer's noise strength."
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    write(sweep(args), args.out, args)


if __name__ == "__main__":
    main()
