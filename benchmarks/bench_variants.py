"""Forward+backward time of G and D for the COCA variants of Liu et al., arXiv 2208.03934, Table 3, side by side in one run.

    python benchmarks/bench_variants.py [--batch 2] [--repeats 3] [--presets coca-baseline,coca-ss] [--bf16]

Every measurement is repeated and the variants are interleaved (round-robin), so machine noise hits all of
them alike; the table reports the median and the ratio to ``coca-baseline`` measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch

from medgan3d.config import load_preset
from medgan3d.runtime import allocator, ensure_fast_allocator
from medgan3d.summary import count_params

COCA = ["coca-baseline", "coca-group-d", "coca-depthwise-d", "coca-ss-d", "coca-split", "coca-ss"]


def make_steps(name: str, batch: int, bf16: bool) -> dict[str, Callable[[], None]]:
    """Closures timing G fwd+bwd, D fwd+bwd and a full G+D step (Gmain + Dmain, no regularisers)."""
    cfg = load_preset(name).model
    torch.manual_seed(0)
    G, D = cfg.build_generator(), cfg.build_discriminator()
    z = torch.randn(batch, cfg.z_dim)
    real = torch.randn(batch, *cfg.output_shape)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext

    def g_step() -> None:
        with autocast():
            loss = G(z).float().square().mean()
        loss.backward()

    def d_step() -> None:
        with autocast():
            loss = D(real).float().mean()
        loss.backward()

    def full_step() -> None:
        with autocast():  # Gmain: non-saturating loss through D
            loss_g = torch.nn.functional.softplus(-D(G(z))).mean()
        loss_g.backward()
        with autocast():  # Dmain: fake (detached) and real
            fake = G(z).detach()
            loss_d = (
                torch.nn.functional.softplus(D(fake)).mean() + torch.nn.functional.softplus(-D(real)).mean()
            )
        loss_d.backward()

    params = count_params(G) + count_params(D)
    return {"G": g_step, "D": d_step, "step": full_step, "_params": params}  # type: ignore[dict-item]


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presets", default=",".join(COCA))
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU)")
    args = parser.parse_args()
    names = args.presets.split(",")
    steps = {n: make_steps(n, args.batch, args.bf16) for n in names}
    times: dict[str, dict[str, list[float]]] = {n: {"G": [], "D": [], "step": []} for n in names}
    for n in names:  # warm-up (allocator, oneDNN primitive caches)
        for part in ("G", "D", "step"):
            steps[n][part]()
    for _ in range(args.repeats):
        for part in ("G", "D", "step"):
            for n in names:
                times[n][part].append(timed(steps[n][part]))
    med = {n: {p: statistics.median(v) for p, v in times[n].items()} for n in names}
    ref = med[names[0]]
    threads = torch.get_num_threads()
    print(
        f"batch {args.batch}, {'bf16 autocast' if args.bf16 else 'fp32'}, {threads} threads, {allocator()} malloc, "
        f"median of {args.repeats}, ratio = {names[0]} time / variant time (higher is faster)"
    )
    header = f"{'preset':<18}{'params':>10}{'G f+b s':>10}{'D f+b s':>10}{'step s':>10}{'G x':>7}{'D x':>7}{'step x':>8}"
    print(header)
    print("-" * len(header))
    for n in names:
        m = med[n]
        print(
            f"{n:<18}{steps[n]['_params']:>10,}{m['G']:>10.3f}{m['D']:>10.3f}{m['step']:>10.3f}"
            f"{ref['G'] / m['G']:>7.2f}{ref['D'] / m['D']:>7.2f}{ref['step'] / m['step']:>8.2f}"
        )


if __name__ == "__main__":
    ensure_fast_allocator()
    main()
