"""HA-GAN speed and memory: one training iteration of the real loop, or full-volume inference.

    python benchmarks/bench_hagan.py --res 128|256|64|32 [--batch B] [--threads T] [--device D]
                                     [--mode train|infer] [--repeats N] [--chunk-depth K]

Sun et al., "Hierarchical Amortized GAN for 3D High Resolution Medical Image Synthesis" (IEEE JBHI 2022).

* ``train``: the networks of preset ``hagan-<res>`` (``hagan-tiny`` for 32) built by the family, random reals
  in [-1, 1] of shape (1, R, R, R); each iteration is one :func:`medgan3d.training.loop.train_step` (the crop
  from ``begin_iteration``, phases D, G, E_H, E_G through ``run_phase``), every phase timed on its own. One
  warm-up iteration, then the median of ``--repeats``.
* ``infer``: ``G.generate(z)`` of full volumes under ``torch.no_grad()``, in depth slabs of ``--chunk-depth``
  latent slices and whole. Peak RSS only grows, so each variant runs in its own subprocess (this script with
  ``--variant``), which saves its volume for the parent to compare.

Peak RSS is ``getrusage(RUSAGE_SELF).ru_maxrss``: the whole process, imports and building included. The
last line printed is one JSON object. The reference figures are the published code's on this kind of
machine (``shared/specs/hagan.md`` §9): 128³ training, batch 2, 1 thread: 30–39 s per iteration, 2.3–2.4 GiB;
inference of one volume: 256³ 35 s at 5.7 GiB, 128³ 5.5 s at 1.2 GiB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from medgan3d.runtime import allocator, ensure_fast_allocator

PHASES = ("D", "G", "E_H", "E_G")
# published code, this kind of machine, 1 thread (shared/specs/hagan.md, header and §9)
REFERENCE_TRAIN = {
    "res": 128,
    "batch": 2,
    "threads": 1,
    "s_per_iter": [30.0, 39.0],
    "peak_rss_mib": 2400,
    "phase_s": {"D": [5, 7], "G": [14, 18], "E_H": [1.4, 1.7], "E_G": [10, 14]},
}
REFERENCE_INFER = {
    256: {"s": 35.0, "peak_rss_mib": 5.7 * 1024, "batch": 1, "threads": 1},
    128: {"s": 5.5, "peak_rss_mib": 1.2 * 1024, "batch": 1, "threads": 1},
}  # whole volume


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def preset_name(res: int) -> str:
    return "hagan-tiny" if res == 32 else f"hagan-{res}"


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


# -------------------------------------------------------------------------------------------- train


@contextlib.contextmanager
def timed_phases(times: dict[str, float], device: Any) -> Iterator[None]:
    """Time every ``run_phase`` that ``train_step`` makes (it looks the function up in its module)."""
    from medgan3d.training import loop

    original = loop.run_phase

    def timed(family: Any, phase: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
        _sync(device)
        start = time.perf_counter()
        out = original(family, phase, *args, **kwargs)
        _sync(device)
        times[phase.name] = time.perf_counter() - start
        return out

    loop.run_phase = timed
    try:
        yield
    finally:
        loop.run_phase = original


def bench_train(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from medgan3d.config import load_preset
    from medgan3d.training.family import family_for
    from medgan3d.training.loop import (
        Dist,
        RealBatches,
        TrainConfig,
        TrainState,
        build_networks,
        resolve_loss,
        train_step,
    )

    class RandomReals(RealBatches):
        """The same random batch in [-1, 1] for every micro-batch (data loading is not what is measured)."""

        def __init__(self, shape: tuple[int, ...], cfg: TrainConfig, d: Dist) -> None:
            self.cfg, self.d = cfg, d
            g = torch.Generator().manual_seed(0)
            self.batch = (torch.rand(cfg.batch_gpu, *shape, generator=g) * 2 - 1).to(d.device)

        def micro(self, position: int, r: int) -> torch.Tensor:
            return self.batch

    device = torch.device(args.device)
    model = load_preset(preset_name(args.res)).model
    family = family_for(model)
    cfg = resolve_loss(TrainConfig(batch=args.batch, batch_gpu=args.batch), family)
    d = Dist(device=device)
    build_start = time.perf_counter()
    nets = build_networks(family, model, cfg, device, from_inflated=False)
    build_s = time.perf_counter() - build_start
    reals = RandomReals(model.output_shape, cfg, d)
    state = TrainState(extra=family.initial_extra_state())
    iters: list[float] = []
    phases: dict[str, list[float]] = {p: [] for p in PHASES}
    for i in range(args.repeats + 1):  # the first is the warm-up
        times: dict[str, float] = {}
        with timed_phases(times, device):
            _sync(device)
            start = time.perf_counter()
            train_step(family, nets, reals, state, cfg, d, rounds=1)
            _sync(device)
            total = time.perf_counter() - start
        if i == 0:
            warmup = total
            continue
        iters.append(total)
        for p in PHASES:
            phases[p].append(times[p])
    matches = (args.res, args.batch, args.threads, device.type) == (128, 2, 1, "cpu")
    s_per_iter = statistics.median(iters)
    result: dict[str, Any] = {
        "mode": "train",
        "res": args.res,
        "preset": preset_name(args.res),
        "batch": args.batch,
        "threads": args.threads,
        "device": str(device),
        "allocator": allocator(),
        "repeats": args.repeats,
        "s_per_iter": s_per_iter,
        "phase_s": {p: statistics.median(v) for p, v in phases.items()},
        "iter_s_all": iters,
        "warmup_s": warmup,
        "build_s": build_s,
        "peak_rss_mib": peak_rss_mib(),
        "params_m": {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in nets.modules.items()},
        "reference_s_per_iter": REFERENCE_TRAIN["s_per_iter"] if matches else None,
        "reference_phase_s": REFERENCE_TRAIN["phase_s"] if matches else None,
        "reference_peak_rss_mib": REFERENCE_TRAIN["peak_rss_mib"] if matches else None,
        "speedup_vs_reference_low": REFERENCE_TRAIN["s_per_iter"][0] / s_per_iter if matches else None,
    }
    if device.type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def print_train(r: dict[str, Any]) -> None:
    print(
        f"HA-GAN {r['preset']} training, batch {r['batch']}, {r['device']} ({r['threads']} threads, "
        f"{r['allocator']} malloc), median of {r['repeats']} after 1 warm-up ({r['warmup_s']:.2f} s)"
    )
    ref = r["reference_phase_s"] or {}
    print(f"{'phase':<8}{'s':>10}{'reference s':>16}")
    for p in PHASES:
        span = f"{ref[p][0]}–{ref[p][1]}" if p in ref else "-"
        print(f"{p:<8}{r['phase_s'][p]:>10.3f}{span:>16}")
    span = "{}–{}".format(*r["reference_s_per_iter"]) if r["reference_s_per_iter"] else "-"
    print(f"{'iter':<8}{r['s_per_iter']:>10.3f}{span:>16}")
    rss = r["reference_peak_rss_mib"]
    print(f"peak RSS {r['peak_rss_mib']:.0f} MiB" + (f" (reference ~{rss} MiB)" if rss else ""))
    if "cuda_peak_mib" in r:
        print(f"CUDA peak allocated {r['cuda_peak_mib']:.0f} MiB")
    if r["speedup_vs_reference_low"]:
        print(f"speed-up vs the reference's best (30 s): {r['speedup_vs_reference_low']:.2f}x")


# -------------------------------------------------------------------------------------------- infer


def infer_variant(args: argparse.Namespace) -> dict[str, Any]:
    """One inference variant (run in its own process): times, peak memory; saves the first volume."""
    import numpy as np
    import torch

    from medgan3d.config import load_preset

    device = torch.device(args.device)
    chunk = args.chunk_depth if args.variant == "chunked" else None
    torch.manual_seed(0)
    G = load_preset(preset_name(args.res)).model.build_generator().to(device).eval()
    z = torch.randn(args.batch, G.latent_dim, generator=torch.Generator().manual_seed(1)).to(device)
    times = []
    with torch.no_grad():
        for _ in range(args.repeats):
            _sync(device)
            start = time.perf_counter()
            out = G.generate(z, chunk_depth=chunk)
            _sync(device)
            times.append(time.perf_counter() - start)
    np.save(args.save, out.float().cpu().numpy())
    result = {"s": statistics.median(times), "s_all": times, "peak_rss_mib": peak_rss_mib()}
    if device.type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def _run_variant(args: argparse.Namespace, variant: str, save: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--mode",
        "infer",
        "--res",
        str(args.res),
        "--batch",
        str(args.batch),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--repeats",
        str(args.repeats),
        "--chunk-depth",
        str(args.chunk_depth),
        "--variant",
        variant,
        "--save",
        str(save),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} inference failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_infer(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="bench-hagan-") as tmp:
        files = {v: Path(tmp) / f"{v}.npy" for v in ("chunked", "whole")}
        runs = {v: _run_variant(args, v, f) for v, f in files.items()}
        diff = float(np.abs(np.load(files["chunked"]) - np.load(files["whole"])).max())
    ref = REFERENCE_INFER.get(args.res)  # at batch 1, 1 thread: compare like with like
    return {
        "mode": "infer",
        "res": args.res,
        "preset": preset_name(args.res),
        "batch": args.batch,
        "threads": args.threads,
        "device": args.device,
        "allocator": allocator(),
        "repeats": args.repeats,
        "chunk_depth": args.chunk_depth,
        "chunked": runs["chunked"],
        "whole": runs["whole"],
        "max_abs_diff": diff,
        "reference_whole": ref,
    }


def print_infer(r: dict[str, Any]) -> None:
    print(
        f"HA-GAN {r['preset']} inference of {r['batch']} volume(s) {r['res']}³, {r['device']} "
        f"({r['threads']} threads, {r['allocator']} malloc), median of {r['repeats']}, own process each"
    )
    print(f"{'variant':<26}{'s':>10}{'peak RSS MiB':>15}")
    print(
        f"{'chunked (K=' + str(r['chunk_depth']) + ' latent slices)':<26}"
        f"{r['chunked']['s']:>10.3f}{r['chunked']['peak_rss_mib']:>15.0f}"
    )
    print(f"{'whole':<26}{r['whole']['s']:>10.3f}{r['whole']['peak_rss_mib']:>15.0f}")
    if r["reference_whole"]:
        ref = r["reference_whole"]
        label = f"published, whole, {ref['threads']} thread"
        print(f"{label:<26}{ref['s']:>10.1f}{ref['peak_rss_mib']:>15.0f}")
    print(f"max |chunked - whole| = {r['max_abs_diff']:.3g}")


# -------------------------------------------------------------------------------------------- main


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--res", type=int, choices=(32, 64, 128, 256), required=True)
    parser.add_argument("--batch", type=int, default=None, help="default: 2 (train), 1 (infer)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", choices=("train", "infer"), default="train")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-depth", type=int, default=None, help="latent slices per slab; default R/32")
    parser.add_argument("--variant", choices=("chunked", "whole"), help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch is None:
        args.batch = 2 if args.mode == "train" else 1
    if args.chunk_depth is None:
        args.chunk_depth = max(1, args.res // 32)
    if min(args.batch, args.threads, args.repeats, args.chunk_depth) < 1:
        parser.error("--batch, --threads, --repeats and --chunk-depth must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.variant:  # a subprocess of infer mode: one JSON line only
        print(json.dumps(infer_variant(args)))
        return
    load_before = _load()
    bench: Callable[[argparse.Namespace], dict[str, Any]] = (
        bench_train if args.mode == "train" else bench_infer
    )
    result = bench(args)
    result["load_avg_before"], result["load_avg_after"] = load_before, _load()
    (print_train if args.mode == "train" else print_infer)(result)
    print(f"load average (1, 5, 15 min): before {load_before}, after {result['load_avg_after']}")
    print(json.dumps(result))


if __name__ == "__main__":
    ensure_fast_allocator()  # before torch is imported: the re-exec then costs one interpreter start only
    main()
