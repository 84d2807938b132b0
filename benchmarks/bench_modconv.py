"""Fused vs non-fused modulated convolution, per synthesis layer of a preset's generator, in one run.

    python benchmarks/bench_modconv.py [--presets coca-baseline,coca-ss] [--batch 4] [--repeats 3] [--device cpu]

Fused: the batch folded into the channels, one grouped convolution (groups = batch · branches) with
per-sample weights. Non-fused (StyleGAN2-ADA's training form): x·s, one convolution with the shared weight,
·demodulation. Each layer runs forward + backward (input and weight gradients) on random activations of its
real shape, the two forms interleaved; the table gives the median times and their ratio per layer and summed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from medgan3d.config import load_preset
from medgan3d.networks.layers import modulated_conv
from medgan3d.networks.stylegan import SynthesisLayer


def _step(layer: SynthesisLayer, x: torch.Tensor, s: torch.Tensor, fused: bool) -> float:
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    y = modulated_conv(x, layer.weight, s, layer.spatial_dims, up=layer.up, groups=layer.groups, fused=fused)
    y.square().mean().backward()
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", default="coca-baseline,coca-ss")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, median of {args.repeats}")
    print(f"{'preset':<16}{'layer':<14}{'shape':<22}{'fused ms':>10}{'non-fused ms':>14}{'fused/non':>11}")
    for name in args.presets.split(","):
        G = load_preset(name).model.build_generator().to(device)
        totals = {True: 0.0, False: 0.0}
        for b, block in enumerate(G.synthesis.blocks):
            for lname in ("conv0", "conv1"):
                layer = getattr(block, lname, None)
                if layer is None:
                    continue
                c_in = layer.weight.shape[1] * layer.groups
                res = [r // 2 for r in layer.resolution] if layer.up else list(layer.resolution)
                x = torch.randn(args.batch, c_in, *res, device=device, requires_grad=True)
                s = torch.randn(args.batch, c_in, device=device).requires_grad_()
                times: dict[bool, list[float]] = {True: [], False: []}
                for fused in (True, False):  # warm-up
                    _step(layer, x, s, fused)
                for _ in range(args.repeats):
                    for fused in (True, False):
                        times[fused].append(_step(layer, x, s, fused))
                med = {f: statistics.median(t) * 1e3 for f, t in times.items()}
                totals = {f: totals[f] + med[f] for f in med}
                shape = "x".join(map(str, [c_in, *res]))
                print(
                    f"{name:<16}{f'b{b}.{lname}':<14}{shape:<22}{med[True]:>10.1f}{med[False]:>14.1f}"
                    f"{med[True] / med[False]:>10.2f}x"
                )
        print(
            f"{name:<16}{'all':<14}{'':<22}{totals[True]:>10.1f}{totals[False]:>14.1f}"
            f"{totals[True] / totals[False]:>10.2f}x"
        )


if __name__ == "__main__":
    main()
