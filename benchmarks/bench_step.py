"""Cost of every phase of the training step, side by side with another git revision, in one run.

    python benchmarks/bench_step.py [--against REV] [--quick] [--presets coca-baseline,coca-ss]
                                    [--precisions fp32,bf16] [--batch 4] [--repeats 3] [--device cpu|cuda]

Per preset × precision × phase (StyleGAN2: Gmain, Greg, Dmain, Dreg; any family's phases work) it prints the
median ms of :func:`medgan3d.training.loop.run_phase` at ``batch_gpu = batch``, the ATen ops it dispatches
(≈ kernels launched), the device reads (host↔device syncs: ``_local_scalar_dense`` of device tensors), the
bytes saved for backward (peak alive at once, ``saved_tensors_hooks``) and, on CUDA, the peak allocated
memory; per configuration s/kimg and syncs per iteration, amortised as the loop runs the phases (StyleGAN2:
Greg every 4th, Dreg every 16th iteration). Reals are random tensors of the preset's shape.

``--against REV`` checks REV out into a temporary ``git worktree`` and runs its ``medgan3d`` in a second
worker process; the two workers take turns phase by phase (interleaved: load drifts hit both), so every
figure comes with its ratio this/REV. REV must have the family-generic loop (``run_phase`` with a family).
The counters come from this tree's ``src/medgan3d/training/measure.py``, loaded by path in both workers.
``--quick``: batch 2, fp32, one timed repeat after the counting pass (which is also the warm-up):
coca-baseline and coca-ss against REV in under two minutes of CPU time (one thread each; a machine busy with
other work takes longer in wall time). ``--quick --precisions fp32,bf16`` adds bf16.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MEASURE = ROOT / "src" / "medgan3d" / "training" / "measure.py"


# ------------------------------------------------------------------------------------------- the worker


def _measure_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_step_measure", os.environ["BENCH_STEP_MEASURE"])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Worker:
    """One tree's networks and steps; answers JSON requests (one per line on stdin)."""

    def __init__(self, device: str) -> None:
        import torch

        import medgan3d
        from medgan3d.training import loop

        self.torch, self.loop, self.measure = torch, loop, _measure_module()
        self.device = torch.device(device)
        self.bundles: dict[str, Any] = {}
        self.source = str(Path(medgan3d.__file__).parent)

    def setup(self, key: str, preset: str, bf16: bool, batch: int) -> dict[str, Any]:
        from medgan3d.config import load_preset
        from medgan3d.training.family import family_for

        torch, loop = self.torch, self.loop
        model = load_preset(preset).model
        family = family_for(model)
        cfg = loop.resolve_loss(loop.TrainConfig(batch=batch, batch_gpu=batch, bf16=bf16), family)
        d = loop.Dist(device=self.device)
        nets = loop.build_networks(family, model, cfg, self.device, from_inflated=False)

        class RandomReals(loop.RealBatches):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                self.cfg, self.d = cfg, d
                g = torch.Generator().manual_seed(0)
                self.batch = (torch.rand(batch, *model.output_shape, generator=g) * 2 - 1).to(d.device)

            def micro(self, position: int, r: int) -> Any:
                return self.batch

        phases, freq = {}, Counter()
        for step in range(64):
            for phase in family.phases(step, cfg):
                phases[phase.name] = phase
                freq[phase.name] += 1 / 64
        state = loop.TrainState(extra=family.initial_extra_state())
        self.bundles[key] = (family, nets, RandomReals(), state, cfg, d, phases)
        return {"phases": list(phases), "freq": dict(freq), "source": self.source}

    def _run(self, key: str, phase: str) -> None:
        family, nets, reals, state, cfg, d, phases = self.bundles[key]
        context = family.begin_iteration(state.batch_idx, nets, cfg)
        self.loop.run_phase(family, phases[phase], nets, reals, state, cfg, d, 1, context)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()

    def count(self, key: str, phase: str) -> dict[str, Any]:
        torch, m = self.torch, self.measure
        if self.device.type == "cuda":
            self._sync()
            torch.cuda.reset_peak_memory_stats()
        with (
            m.OpCounter() as ops,
            m.DeviceReads(device=self.device) as reads,
            m.SavedActivations() as saved,
        ):
            self._run(key, phase)
        self._sync()
        peak = torch.cuda.max_memory_allocated() if self.device.type == "cuda" else None
        return {
            "ops": ops.ops,
            "syncs": len(reads.reads),
            "saved_peak": saved.peak,
            "saved_total": saved.total,
            "peak_mem": peak,
        }

    def time(self, key: str, phase: str) -> dict[str, Any]:
        self._sync()
        start = time.perf_counter()
        self._run(key, phase)
        self._sync()
        return {"s": time.perf_counter() - start}

    def rss(self) -> dict[str, Any]:
        import resource

        return {"max_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def serve(device: str) -> None:
    out = os.fdopen(os.dup(1), "w")  # the protocol's channel; whatever else prints goes to stderr
    os.dup2(2, 1)
    worker = Worker(device)
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "quit":
            break
        answer = getattr(worker, request.pop("cmd"))(**request)
        out.write(json.dumps(answer) + "\n")
        out.flush()


# ------------------------------------------------------------------------------------------- the driver


class Remote:
    def __init__(self, name: str, tree: Path, device: str, threads: int) -> None:
        env = dict(
            os.environ,
            PYTHONPATH=str(tree / "src"),
            BENCH_STEP_MEASURE=str(MEASURE),
            OMP_NUM_THREADS=str(threads),
            MKL_NUM_THREADS=str(threads),
        )
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", device],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def ask(self, cmd: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kw}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench_step: the {self.name} worker died (its stderr is above)")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.ask_quit()
        self.proc.wait(timeout=60)

    def ask_quit(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self.proc.stdin.close()


@contextlib.contextmanager
def revision_tree(rev: str) -> Any:
    """REV checked out (detached) in a temporary git worktree, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bench-step-"))
    tree = folder / "tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), rev], check=True
    )
    try:
        yield tree
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
        with contextlib.suppress(OSError):
            folder.rmdir()


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def report(results: dict, configs: list, trees: list[str], batch: int, info: dict) -> None:
    """One block per configuration: a row per phase, then the amortised per-iteration figures."""
    this, other = trees[0], (trees[1] if len(trees) > 1 else None)
    cols = ["ms", "ops", "syncs", "saved MiB"] + (["peak MiB"] if info["device"] == "cuda" else [])
    for c in configs:
        label = f"{c[0]} {'bf16' if c[1] else 'fp32'}, batch {batch}"
        head = "".join(f"{col + (' ' + t if other else ''):>17}" for col in cols for t in trees)
        print(f"\n{label}\n{'phase':<8}{head}" + (f"{'ms ratio':>10}{'saved ratio':>12}" if other else ""))
        r = {t: results[t][c] for t in trees}
        for phase in r[this]["phases"]:
            row = {t: r[t]["per_phase"].get(phase) for t in trees}
            cells = ""
            for col in cols:
                for t in trees:
                    v = row[t]
                    value = (
                        None
                        if v is None
                        else {
                            "ms": v["ms"],
                            "ops": v["ops"],
                            "syncs": v["syncs"],
                            "saved MiB": v["saved_peak"] / 2**20,
                            "peak MiB": (v["peak_mem"] or 0) / 2**20,
                        }[col]
                    )
                    cells += f"{_fmt(value, '.1f' if col in ('ms', 'saved MiB', 'peak MiB') else '.0f'):>17}"
            extra = ""
            if other:
                a, b = row[this], row[other]
                extra = f"{_ratio(a and a['ms'], b and b['ms']):>10}"
                extra += f"{_ratio(a and a['saved_peak'], b and b['saved_peak']):>12}"
            print(f"{phase:<8}{cells}{extra}")
        for what, key, spec in (
            ("s/kimg", "s_per_kimg", ".1f"),
            ("syncs/iteration", "syncs_per_iter", ".2f"),
            ("ops/iteration", "ops_per_iter", ".0f"),
        ):
            values = " | ".join(f"{t} {format(r[t][key], spec)}" for t in trees)
            ratio = f" | ratio {_ratio(r[this][key], r[other][key])}" if other else ""
            print(f"  {what}: {values}{ratio}")
    names = sorted({c[0] for c in configs})
    if len(names) == 2:
        for precision in sorted({c[1] for c in configs}):
            for t in trees:
                a, b = (results[t][(n, precision)]["s_per_kimg"] for n in names)
                print(
                    f"{t}: {names[1]} vs {names[0]} ({'bf16' if precision else 'fp32'}): {a / b:.2f}x faster"
                )


def summarise(answers: dict, freq: dict, batch: int) -> dict[str, Any]:
    per_phase = {}
    for phase, a in answers.items():
        per_phase[phase] = a["count"] | {"ms": statistics.median(a["s"]) * 1000}
    s_iter = sum(per_phase[p]["ms"] / 1000 * f for p, f in freq.items())
    return {
        "phases": list(answers),
        "per_phase": per_phase,
        "s_per_kimg": s_iter / batch * 1000,
        "syncs_per_iter": sum(per_phase[p]["syncs"] * f for p, f in freq.items()),
        "ops_per_iter": sum(per_phase[p]["ops"] * f for p, f in freq.items()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--against", metavar="REV", help="git revision to compare with (e.g. main, HEAD~3)")
    parser.add_argument(
        "--quick", action="store_true", help="batch 2, fp32 (unless --precisions), one repeat"
    )
    parser.add_argument("--presets", default="coca-baseline,coca-ss")
    parser.add_argument("--precisions", default=None, help="default: fp32,bf16 (--quick: fp32)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--serve", metavar="DEVICE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.quick:
        args.batch, args.repeats = 2, 1
    args.precisions = args.precisions or ("fp32" if args.quick else "fp32,bf16")
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    precisions = [p.strip() for p in args.precisions.split(",")]
    if not set(precisions) <= {"fp32", "bf16"}:
        raise SystemExit(f"--precisions: fp32 and/or bf16, got {args.precisions}")
    configs = [(n.strip(), p == "bf16") for n in args.presets.split(",") for p in precisions]
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        trees = {"this": ROOT}
        if args.against:
            trees[args.against] = stack.enter_context(revision_tree(args.against))
        remotes = {t: Remote(t, path, args.device, args.threads) for t, path in trees.items()}
        for r in remotes.values():
            stack.callback(r.close)
        meta: dict[str, dict] = {t: {} for t in remotes}
        for c in configs:
            for t, r in remotes.items():
                meta[t][c] = r.ask("setup", key=repr(c), preset=c[0], bf16=c[1], batch=args.batch)
        answers: dict[str, dict] = {t: {c: {} for c in configs} for t in remotes}
        for c in configs:  # the counting pass, also the warm-up of every phase
            for phase in meta["this"][c]["phases"]:
                for t, r in remotes.items():
                    if phase in meta[t][c]["phases"]:
                        answers[t][c][phase] = {"count": r.ask("count", key=repr(c), phase=phase), "s": []}
        for _ in range(args.repeats):
            for c in configs:
                for phase in meta["this"][c]["phases"]:
                    for t, r in remotes.items():
                        if phase in answers[t][c]:
                            answers[t][c][phase]["s"].append(r.ask("time", key=repr(c), phase=phase)["s"])
        rss = {t: r.ask("rss")["max_rss"] for t, r in remotes.items()}
    results = {
        t: {c: summarise(answers[t][c], meta[t][c]["freq"], args.batch) for c in configs} for t in remotes
    }
    import torch

    print(
        f"bench_step: device {args.device}, {args.threads} thread(s), batch {args.batch}, median of "
        f"{args.repeats}, torch {torch.__version__}; trees: "
        + ", ".join(f"{t} = {meta[t][configs[0]]['source']}" for t in remotes)
    )
    report(results, configs, list(remotes), args.batch, {"device": args.device})
    print("max RSS per worker: " + ", ".join(f"{t} {rss[t] / 2**30:.2f} GiB" for t in remotes))
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        figures = {
            f"{c[0]}/{'bf16' if c[1] else 'fp32'}": {t: results[t][c] for t in remotes} for c in configs
        }
        args.json.write_text(
            json.dumps(
                {"batch": args.batch, "device": args.device, "trees": list(remotes), "configs": figures},
                indent=1,
            ),
            encoding="utf-8",
        )


if __name__ == "__main__":
    if "--serve" not in sys.argv:
        sys.path.insert(0, str(ROOT / "src"))
        from medgan3d.runtime import ensure_fast_allocator

        ensure_fast_allocator()  # both workers inherit the allocator (tcmalloc where installed)
    main()
