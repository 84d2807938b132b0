"""Seconds per kimg of the real training step: COCA Baseline vs Split&Shuffle, fp32 vs bf16, in one run.

    python benchmarks/bench_train.py [--batch 4] [--repeats 3] [--device cpu|cuda] [--presets ...]
                                     [--precisions fp32,bf16]

Each phase of :func:`medgan3d.training.loop.run_phase` (Gmain, Greg, Dmain, Dreg) is timed on its own,
interleaved across configurations, and amortised exactly as the loop runs them (Greg every 4th, Dreg every
16th iteration): s/kimg = (Gmain + Dmain + Greg/4 + Dreg/16) / batch · 1000. Reals are random tensors of
the preset's shape (data loading is ~1300 volumes/s from the cache, negligible here).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from medgan3d.config import load_preset
from medgan3d.runtime import allocator, ensure_fast_allocator
from medgan3d.training.family import family_for
from medgan3d.training.loop import (
    Dist,
    RealBatches,
    TrainConfig,
    TrainState,
    build_networks,
    resolve_loss,
    run_phase,
)

PHASES = ("Gmain", "Greg", "Dmain", "Dreg")


class RandomReals(RealBatches):
    def __init__(self, shape: tuple[int, ...], cfg: TrainConfig, d: Dist) -> None:
        self.cfg, self.d = cfg, d
        self.batch = torch.randn(cfg.batch_gpu, *shape, device=d.device).clamp(-1, 1)

    def micro(self, position: int, r: int) -> torch.Tensor:
        return self.batch


def setup(name: str, bf16: bool, batch: int, device: torch.device):  # type: ignore[no-untyped-def]
    model = load_preset(name).model
    family = family_for(model)
    cfg = resolve_loss(TrainConfig(batch=batch, batch_gpu=batch, bf16=bf16), family)
    d = Dist(device=device)
    nets = build_networks(family, model, cfg, device, from_inflated=False)
    return family, nets, RandomReals(model.output_shape, cfg, d), cfg, d


def time_phase(phase: str, bundle) -> float:  # type: ignore[no-untyped-def]
    family, nets, reals, cfg, d = bundle
    if d.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    state = TrainState(extra=family.initial_extra_state())
    trains = ("G",) if phase.startswith("G") else ("D",)
    run_phase(family, family.phase(phase, trains), nets, reals, state, cfg, d, rounds=1)
    if d.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _kimg(times: dict[str, list[float]], i: int) -> float:
    """Repeat ``i``'s amortised seconds of one iteration (the lazy-regularisation intervals as in the loop)."""
    return times["Gmain"][i] + times["Dmain"][i] + times["Greg"][i] / 4 + times["Dreg"][i] / 16


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", default="coca-baseline,coca-ss")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default="fp32,bf16", help="comma-separated subset of fp32,bf16")
    args = parser.parse_args()
    device = torch.device(args.device)
    precisions = [{"fp32": False, "bf16": True}[p] for p in args.precisions.split(",")]
    configs = list(itertools.product(args.presets.split(","), precisions))
    bundles = {c: setup(c[0], c[1], args.batch, device) for c in configs}
    times: dict[tuple[str, bool], dict[str, list[float]]] = {c: {p: [] for p in PHASES} for c in configs}
    for c in configs:  # warm-up
        for p in PHASES:
            time_phase(p, bundles[c])
    for _ in range(args.repeats):
        for p in PHASES:
            for c in configs:
                times[c][p].append(time_phase(p, bundles[c]))
    med = {c: {p: statistics.median(v) for p, v in times[c].items()} for c in configs}
    per_kimg = {
        c: (m["Gmain"] + m["Dmain"] + m["Greg"] / 4 + m["Dreg"] / 16) / args.batch * 1000
        for c, m in med.items()
    }
    ref = per_kimg[configs[0]]
    print(
        f"device {device} ({torch.get_num_threads()} threads, {allocator()} malloc), batch {args.batch}, "
        f"median of {args.repeats}"
    )
    print(
        f"{'preset':<16}{'precision':<10}"
        + "".join(f"{p + ' s':>10}" for p in PHASES)
        + f"{'s/kimg':>10}{'speed-up':>10}"
    )
    for c in configs:
        row = "".join(f"{med[c][p]:>10.3f}" for p in PHASES)
        print(
            f"{c[0]:<16}{'bf16' if c[1] else 'fp32':<10}{row}{per_kimg[c]:>10.1f}{ref / per_kimg[c]:>9.2f}x"
        )
    names = args.presets.split(",")
    if len(names) == 2:
        for bf16 in precisions:
            a, b = (names[0], bf16), (names[1], bf16)
            ratio = per_kimg[a] / per_kimg[b]
            phases = ", ".join(f"{p} {med[a][p] / med[b][p]:.2f}x" for p in PHASES)
            # the spread: the same ratio within each repeat (the configurations ran back to back in it)
            rep = [_kimg(times[a], i) / _kimg(times[b], i) for i in range(args.repeats)]
            print(
                f"{names[1]} vs {names[0]} ({'bf16' if bf16 else 'fp32'}): {ratio:.2f}x faster "
                f"(per repeat {min(rep):.2f}-{max(rep):.2f}x; per phase {phases})"
            )
        for n in names if len(precisions) == 2 else ():
            print(f"{n}: bf16 vs fp32 {per_kimg[(n, False)] / per_kimg[(n, True)]:.2f}x faster")


if __name__ == "__main__":
    ensure_fast_allocator()
    main()
