"""What the table drivers share: scales, data, cached runs, scores, intervals, Markdown.

The tables are those of Liu et al., "Inflating 2D Convolution Weights for Efficient Generation of 3D Medical
Images" (arXiv 2208.03934): Tables 1–2 (`inflation_sweep.py`), 3 (`architectures.py`), 4 (`inflated_architectures.py`),
6–7 (`methods.py`) and 8 (`quality_diversity.py`); docs/results.md has the figures and the command lines.

Every driver prepares its data (the embedded phantoms unless ``--data-heart``/``--data-brain`` name prepared
datasets), trains every row for the same number of real images (kimg), scores every row with the same
extractor, sample count and seeds, repeats it for each seed, and writes ``OUT/<table>.md`` (mean ± 95 %
t-interval over the seeds beside the paper's number) and ``OUT/<table>.csv`` (one line per run).

Runs are cached in ``OUT/runs/`` under a hash of everything that shapes them (dataset content, model, training
settings, initialisation, seed), so drivers sharing ``--out`` reuse the rows they have in common — as in the
paper, where those rows carry the same numbers: Table 3's Baseline is Table 1's No Inflate, Table 4's Baseline
is Table 1's Inflate-1, Tables 6's 3D-StyleGAN2 and Split&Shuffle are Table 3's Baseline and Table 4's
Split&Shuffle, and Table 8 scores the runs of Tables 6–7.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

FIDS = ("fid_ax", "fid_sag", "fid_cor", "fid_avg")
# TrainConfig fields that only decide what is observed: the trained weights do not depend on them (the loop's
# randomness is derived per micro-batch), so they are left out of a run's hash and runs are shared.
OBSERVATION = ("tick_kimg", "snapshot_ticks", "keep_last", "grid", "metrics", "metrics_samples")
KEEP_ALL = 10_000  # checkpoints kept: every snapshot, for the FID-vs-kimg curves (Fig. 4)
KINDS = ("heart", "brain")  # COCA (Tables 1–6) and ADNI (Table 7) stand-ins
# Table 3's rows (§3.3): G and D variants of each architecture
ARCHS = {
    "Baseline": ("baseline", "baseline"),
    "Group-D": ("baseline", "group"),
    "Depthwise-D": ("baseline", "depthwise"),
    "Split&Shuffle-D": ("baseline", "split_shuffle"),
    "Split": ("split", "split"),
    "Split&Shuffle": ("split_shuffle", "split_shuffle"),
}


@dataclass(frozen=True)
class Scale:
    """The sizes of a table set. ``paper`` is §4.1–4.2 of Liu et al., arXiv 2208.03934: COCA 32×64×64, ADNI 64³, 32 channels,
    minibatch 128, 5,000 kimg for 3D and 25,000 kimg for 2D pretraining; ``tiny`` fits the whole table set
    on two CPU cores (16³ phantoms, the ``tiny`` preset's 16-channel networks, a few hundred images)."""

    name: str
    shape: dict[str, tuple[int, int, int]]
    subjects: dict[str, int]  # phantoms made when no dataset is given
    stylegan: dict[str, str]  # preset whose G/D variants are swapped per architecture
    baselines: dict[str, str]  # suffix of the baseline presets, e.g. wgan-gp-coca
    kimg: float
    pretrain_kimg: float
    batch: int
    batch_gpu: int
    pretrain_batch: int
    pretrain_batch_gpu: int
    samples: int
    snap_kimg: float
    inplane: int  # raw in-plane pixels of the heart phantoms


SCALES = {
    "tiny": Scale(
        "tiny",
        {"heart": (16, 16, 16), "brain": (16, 16, 16)},
        {"heart": 48, "brain": 48},
        {"heart": "tiny", "brain": "tiny"},
        {"heart": "tiny", "brain": "tiny"},
        kimg=0.4,
        pretrain_kimg=2.0,
        batch=8,
        batch_gpu=8,
        pretrain_batch=16,
        pretrain_batch_gpu=16,
        samples=64,
        snap_kimg=0.2,
        inplane=64,
    ),
    "paper": Scale(
        "paper",
        {"heart": (32, 64, 64), "brain": (64, 64, 64)},
        {"heart": 787, "brain": 991},
        {"heart": "coca-baseline", "brain": "adni-baseline"},
        {"heart": "coca", "brain": "adni"},
        kimg=5000.0,
        pretrain_kimg=25000.0,
        batch=128,
        batch_gpu=32,
        pretrain_batch=128,
        pretrain_batch_gpu=128,
        samples=2000,
        snap_kimg=500.0,
        inplane=128,
    ),
}


@dataclass
class Context:
    """One driver invocation: where runs go and how every row is trained and scored."""

    out: Path
    scale: Scale
    seeds: list[int]
    device: str | None
    extractor_2d: str
    equalized_lr: str
    datasets: dict[str, Path | None]
    log: list[dict[str, Any]] = dataclasses.field(default_factory=list)


# ------------------------------------------------------------------------------------------ command line
def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every driver takes; a driver adds its own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("experiments-out"), help="outputs and the run cache")
    p.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    p.add_argument("--seeds", default="0,1,2", help="comma list; at least 3 for an interval worth reading")
    p.add_argument("--kimg", type=float, help="3D budget of every row (default: the scale's)")
    p.add_argument("--pretrain-kimg", type=float, help="2D pretraining length (default: the scale's)")
    p.add_argument(
        "--snap-kimg", type=float, help="curve spacing of the inflation sweep (default: the scale's)"
    )
    p.add_argument("--samples", type=int, help="generated volumes per score (default: the scale's)")
    p.add_argument("--batch", type=int, help="StyleGAN2 minibatch (default: the scale's)")
    p.add_argument("--batch-gpu", type=int, help="StyleGAN2 micro-batch (default: the scale's)")
    p.add_argument("--subjects", type=int, help="phantoms per dataset when none is given")
    p.add_argument("--data-heart", type=Path, help="prepared COCA-like dataset (default: heart phantoms)")
    p.add_argument("--data-brain", type=Path, help="prepared ADNI-like dataset (default: brain phantoms)")
    p.add_argument("--extractor-2d", default="auto", help="slice-FID extractor: auto | inception | random-2d")
    p.add_argument(
        "--equalized-lr",
        choices=("compensate", "stored"),
        default="compensate",
        help="how inflation treats the equalized-lr gain (docs/inflation.md)",
    )
    p.add_argument("--device", default=None)
    return p


def context(args: argparse.Namespace) -> Context:
    """The scale with the command line's overrides applied."""
    scale = SCALES[args.scale]
    over = {
        "kimg": args.kimg,
        "pretrain_kimg": args.pretrain_kimg,
        "snap_kimg": args.snap_kimg,
        "samples": args.samples,
        "batch": args.batch,
        "batch_gpu": args.batch_gpu,
    }
    scale = dataclasses.replace(scale, **{k: v for k, v in over.items() if v is not None})
    if args.subjects:
        scale = dataclasses.replace(scale, subjects=dict.fromkeys(KINDS, args.subjects))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    return Context(
        args.out,
        scale,
        seeds,
        args.device,
        args.extractor_2d,
        args.equalized_lr,
        {"heart": args.data_heart, "brain": args.data_brain},
    )


# ------------------------------------------------------------------------------------------ data and models
def dataset(ctx: Context, kind: str) -> Path:
    """The prepared dataset of ``kind``: the one given, or phantoms made once under OUT/data/ (heart scans
    with every axial slice kept for pretraining, Liu et al., arXiv 2208.03934 §4.3.1)."""
    from medgan3d.data import make_brain_phantoms, make_heart_phantoms

    if ctx.datasets[kind] is not None:
        return Path(ctx.datasets[kind])  # type: ignore[arg-type]
    n, shape = ctx.scale.subjects[kind], ctx.scale.shape[kind]
    root = ctx.out / "data" / f"{kind}-{n}-{'x'.join(map(str, shape))}"
    if not (root / "dataset.json").is_file():
        if kind == "heart":
            make_heart_phantoms(n, root, seed=0, shape=shape, inplane=ctx.scale.inplane, all_slices=True)
        else:
            make_brain_phantoms(n, root, seed=0, shape=shape)
    return root


def stylegan_model(ctx: Context, kind: str, arch: str) -> Any:
    """The StyleGAN2 model of Table 3's row ``arch`` for ``kind`` (e.g. ``coca-ss`` at paper scale)."""
    from medgan3d.config import load_preset

    g, d = ARCHS[arch]
    return dataclasses.replace(load_preset(ctx.scale.stylegan[kind]).model, g_variant=g, d_variant=d)


def param_count(model: Any) -> int:
    """Parameters of every network of a model, as the paper's #param columns count them."""
    from medgan3d.summary import count_params

    nets = (
        model.build_networks()
        if hasattr(model, "build_networks")
        else {"G": model.build_generator(), "D": model.build_discriminator()}
    )
    return sum(count_params(n) for n in nets.values())


# ------------------------------------------------------------------------------------------ runs
@dataclass(frozen=True)
class Init:
    """A 3D start inflated from a pretrained 2D twin (Liu et al., arXiv 2208.03934 §3.2): a run of this set or a given checkpoint."""

    pretrain: RunSpec | Path
    strategy: str
    parts: str
    equalized_lr: str


@dataclass(frozen=True)
class RunSpec:
    """Everything that shapes one training run; its hash names the cached run folder."""

    label: str
    data: Path
    model: Any
    cfg: Any  # TrainConfig
    preset: str
    init: Init | None = None

    def key(self) -> str:
        init = (
            None
            if self.init is None
            else {
                "pretrain": p.key()
                if isinstance(p := self.init.pretrain, RunSpec)
                else str(Path(p).resolve()),
                "strategy": self.init.strategy,
                "parts": self.init.parts,
                "equalized_lr": self.init.equalized_lr,
            }
        )
        train = {k: v for k, v in self.cfg.to_dict().items() if k not in OBSERVATION}
        blob = {"data": _content_hash(self.data), "model": self.model.to_dict(), "train": train, "init": init}
        return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def folder(self, ctx: Context) -> Path:
        return ctx.out / "runs" / f"{self.label.replace('/', '-')}-{self.key()}"


def _content_hash(data: Path) -> str:
    return str(json.loads((data / "dataset.json").read_text(encoding="utf-8"))["content_hash"])


def train_config(preset: str, **over: Any) -> Any:
    """The preset's train section resolved for its family, with ``over`` applied."""
    from medgan3d.config import load_preset

    cfg = load_preset(preset).train
    return dataclasses.replace(cfg, **({"keep_last": 1, "grid": 4} | over))


def stylegan_spec(ctx: Context, kind: str, arch: str, seed: int, init: Init | None = None) -> RunSpec:
    """A 3D StyleGAN2 row trained for the scale's budget, from scratch or from ``init``; a checkpoint is kept
    every ``snap_kimg`` (whichever driver trains a run first, the inflation sweep can draw its curve)."""
    s = ctx.scale
    cfg = train_config(
        s.stylegan[kind],
        kimg=s.kimg,
        batch=s.batch,
        batch_gpu=s.batch_gpu,
        seed=seed,
        tick_kimg=s.snap_kimg,
        snapshot_ticks=1,
        keep_last=KEEP_ALL,
    )
    start = "scratch" if init is None else f"{init.strategy}-{init.parts}-{init.equalized_lr}"
    return RunSpec(
        f"{kind}/{arch}/{start}/s{seed}",
        dataset(ctx, kind),
        stylegan_model(ctx, kind, arch),
        cfg,
        s.stylegan[kind],
        init,
    )


def pretrain_spec(ctx: Context, kind: str, arch: str, seed: int) -> RunSpec:
    """The 2D twin of ``arch`` pretrained on every axial slice of the training scans (Liu et al., arXiv 2208.03934 §3.2)."""
    s = ctx.scale
    cfg = train_config(
        s.stylegan[kind],
        kimg=s.pretrain_kimg,
        batch=s.pretrain_batch,
        batch_gpu=s.pretrain_batch_gpu,
        seed=seed,
        tick_kimg=s.pretrain_kimg,
        snapshot_ticks=1,
    )
    return RunSpec(
        f"{kind}/{arch}/pretrain-2d/s{seed}",
        dataset(ctx, kind),
        stylegan_model(ctx, kind, arch).twin_2d(),
        cfg,
        f"{s.stylegan[kind]}-2d",
    )


def inflated_spec(
    ctx: Context, kind: str, arch: str, seed: int, strategy: str = "inflate-1", parts: str = "GD"
) -> RunSpec:
    """A 3D row started from its own 2D twin (same seed) inflated with ``strategy`` on ``parts``; ``none`` is
    the paper's "No Inflate", i.e. training from scratch."""
    if strategy == "none":
        return stylegan_spec(ctx, kind, arch, seed)
    init = Init(pretrain_spec(ctx, kind, arch, seed), strategy, parts, ctx.equalized_lr)
    return stylegan_spec(ctx, kind, arch, seed, init)


def baseline_spec(ctx: Context, kind: str, family: str, seed: int) -> RunSpec:
    """A 3D GAN baseline (docs/baselines.md) at the same kimg, with its preset's own batch and losses."""
    from medgan3d.config import load_preset

    preset = f"{family}-{ctx.scale.baselines[kind]}"
    cfg = train_config(preset, kimg=ctx.scale.kimg, seed=seed, tick_kimg=ctx.scale.kimg, snapshot_ticks=1)
    return RunSpec(f"{kind}/{family}/s{seed}", dataset(ctx, kind), load_preset(preset).model, cfg, preset)


def initial_networks(ctx: Context, spec: RunSpec) -> dict[str, torch.nn.Module]:
    """The networks a run starts from (kimg 0): inflated from its 2D twin, or the loop's seeded fresh init."""
    from medgan3d.inflate import inflate_checkpoint

    if spec.init is None:
        with torch.random.fork_rng():
            torch.manual_seed(spec.cfg.seed)  # what the StyleGAN2 family's build does
            G = spec.model.build_generator()
        return {"G": G, "G_ema": G}
    ckpt = pretrained(ctx, spec.init)
    return inflate_checkpoint(
        ckpt,
        spec.model,
        spec.init.strategy,
        parts=spec.init.parts,
        seed=spec.cfg.seed,
        equalized_lr=spec.init.equalized_lr,
    )


def pretrained(ctx: Context, init: Init) -> Path:
    """The 2D run or checkpoint an inflated start comes from (trained now if it is a spec of this set)."""
    return ensure_run(ctx, init.pretrain) if isinstance(init.pretrain, RunSpec) else Path(init.pretrain)


def _interrupted(folder: Path) -> Path | None:
    """The run an interrupted driver left in ``folder``, if it wrote a checkpoint to resume from."""
    from medgan3d.training.checkpoint import list_checkpoints

    runs = sorted(folder.glob("*/config.yaml")) if folder.is_dir() else []
    return runs[-1].parent if runs and list_checkpoints(runs[-1].parent) else None


def ensure_run(ctx: Context, spec: RunSpec) -> Path:
    """The run folder of ``spec``: reused when a finished run with the same hash exists, resumed from its last
    checkpoint when an interrupted one does, else trained now."""
    from medgan3d.training.loop import train

    folder = spec.folder(ctx)
    done = folder / "done.json"
    if done.is_file():
        record = json.loads(done.read_text(encoding="utf-8"))
        ctx.log.append({**record, "reused": True})
        return Path(record["run"])
    resume = _interrupted(folder)
    if resume is None and folder.exists():  # stopped before its first checkpoint
        shutil.rmtree(folder)
    t0 = time.perf_counter()
    if resume is not None:
        run = train(spec.data, spec.model, spec.cfg, resume=resume, device=ctx.device)
    else:
        init, init_info = None, None
        if spec.init is not None:
            init = initial_networks(ctx, spec)
            init_info = {
                "from": str(pretrained(ctx, spec.init)),
                "strategy": spec.init.strategy,
                "parts": spec.init.parts,
                "equalized_lr": spec.init.equalized_lr,
            }
        run = train(
            spec.data,
            spec.model,
            spec.cfg,
            outdir=folder,
            desc=spec.label.split("/")[1],
            init=init,
            init_info=init_info,
            preset=spec.preset,
            device=ctx.device,
        )
    record = {"label": spec.label, "run": str(run), "seconds": round(time.perf_counter() - t0, 1)}
    done.write_text(json.dumps(record) + "\n", encoding="utf-8")
    ctx.log.append({**record, "reused": False})
    return run


# ------------------------------------------------------------------------------------------ scores
def score(
    ctx: Context, G: torch.nn.Module, data: Path, seed: int, metrics: Sequence[str] = ("fid",)
) -> dict[str, Any]:
    """The scalars of :func:`medgan3d.metrics.evaluate_generator` for ``G`` with the table set's settings (the
    same extractor, extractor seed and sample count for every row; latents seeded by ``seed``), plus
    ``extractor``, the label of the feature extractor used."""
    from medgan3d.metrics import evaluate_generator, scalars

    result = evaluate_generator(
        G,
        data,
        num_samples=ctx.scale.samples,
        metrics=tuple(metrics),
        seed=seed,
        extractor_2d=ctx.extractor_2d,
        bootstrap=0,
        cache=ctx.out / "cache",
        device=ctx.device or "cpu",
    )
    ext = result["provenance"]["extractors"]
    return scalars(result) | {
        "extractor": "; ".join(f"{e['extractor']} ({e['weights']})" for e in ext.values())
    }


def heldout_floor(ctx: Context, kind: str) -> dict[str, Any] | None:
    """FIDs of ``samples`` fresh phantoms (population seed 1) against the dataset: what a generator that had
    learnt the phantom distribution exactly would score with this sample count and extractor. None when the
    dataset was given (there is no fresh real population to draw)."""
    from medgan3d.data import make_brain_phantoms, make_heart_phantoms
    from medgan3d.metrics import evaluate_volumes, scalars
    from medgan3d.metrics.inputs import load_real

    if ctx.datasets[kind] is not None:
        return None
    data, n = dataset(ctx, kind), ctx.scale.samples
    root = data.parent / f"{data.name}-heldout-{n}"
    if not (root / "dataset.json").is_file():
        make = make_heart_phantoms if kind == "heart" else make_brain_phantoms
        extra = {"inplane": ctx.scale.inplane} if kind == "heart" else {}
        make(n, root, seed=1, shape=ctx.scale.shape[kind], **extra)
    fake = load_real(root, list(range(n)))
    result = evaluate_volumes(
        fake,
        data,
        metrics=("fid",),
        extractor_2d=ctx.extractor_2d,
        bootstrap=0,
        cache=ctx.out / "cache",
        device=ctx.device or "cpu",
    )
    return scalars(result)


def score_run(
    ctx: Context, spec: RunSpec, metrics: Sequence[str] = ("fid",), checkpoint: Path | None = None
) -> dict[str, Any]:
    """:func:`score` of the run's final generator (G_ema for StyleGAN2), or of ``checkpoint``'s; cached next
    to the checkpoint."""
    from medgan3d.training.checkpoint import load_generator, resolve_checkpoint

    ckpt = resolve_checkpoint(checkpoint or ensure_run(ctx, spec))
    settings = {"metrics": list(metrics), "samples": ctx.scale.samples, "extractor": ctx.extractor_2d}
    path = (
        ckpt.parent
        / f"scores-{ckpt.name}-{hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]}.json"
    )
    if path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    scores = score(ctx, load_generator(ckpt, device=ctx.device or "cpu"), spec.data, spec.cfg.seed, metrics)
    path.write_text(json.dumps(scores) + "\n", encoding="utf-8")
    return scores


def score_start(ctx: Context, spec: RunSpec) -> dict[str, Any]:
    """:func:`score` of the generator a run starts from (kimg 0: Fig. 4's first points), cached in the run."""
    run = ensure_run(ctx, spec)
    settings = {"samples": ctx.scale.samples, "extractor": ctx.extractor_2d}
    path = run / f"scores-start-{hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:10]}.json"
    if path.is_file():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    scores = score(ctx, initial_networks(ctx, spec)["G_ema"], spec.data, spec.cfg.seed)
    path.write_text(json.dumps(scores) + "\n", encoding="utf-8")
    return scores


# ------------------------------------------------------------------------------------------ tables
def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t interval over seeds (nan for one value)."""
    from scipy import stats

    n = len(values)
    mean = float(sum(values) / n)
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n))


def cell(values: Sequence[float], paper: float | str | None = None, digits: int = 1) -> str:
    """``mean ± half (paper)`` for a Markdown table."""
    mean, half = mean_ci(values)
    text = f"{mean:.{digits}f}" + ("" if math.isnan(half) else f" ± {half:.{digits}f}")
    if isinstance(paper, float):  # as printed in the paper: integers stay integers
        paper = f"{paper:.{digits}f}"
    return text + ("" if paper is None else f" ({paper})")


def fid_cells(scores: Sequence[dict[str, Any]], paper: Sequence[float] | None = None) -> list[str]:
    """The four slice-FID cells of a row from its per-seed scores (Liu et al., arXiv 2208.03934 §4.1.2: FID-ax/-sag/-cor/-avg)."""
    return [
        cell([float(s[k]) for s in scores], None if paper is None else paper[i]) for i, k in enumerate(FIDS)
    ]


def params_cell(model: Any, paper_m: float | None) -> str:
    ours = param_count(model) / 1e6
    return f"{ours:.3f}M" + ("" if paper_m is None else f" ({paper_m:.3f}M)")


def footer(ctx: Context, extractor: str, extra: str = "") -> str:
    """What the numbers are, under every table."""
    s = ctx.scale
    return (
        f"Scale `{s.name}`: every row {s.kimg:g} kimg (3D), {s.samples} generated volumes per score, seeds "
        f"{', '.join(map(str, ctx.seeds))}; cells are mean ± half-width of the 95 % t-interval over the "
        f"seeds, the paper's number in parentheses. Extractor: {extractor}." + (f" {extra}" if extra else "")
    )


def write_table(
    ctx: Context, name: str, title: str, header: Sequence[str], rows: Sequence[Sequence[str]], note: str
) -> str:
    """``OUT/<name>.md``: a title, the table and the note; returned as text too."""
    lines = [
        f"### {title}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join([*lines, "", note, ""])
    (ctx.out / f"{name}.md").write_text(text, encoding="utf-8")
    return text


def write_csv(ctx: Context, name: str, records: Sequence[dict[str, Any]]) -> None:
    """``OUT/<name>.csv``, one line per run and seed."""
    fields = list(dict.fromkeys(k for r in records for k in r))
    with open(ctx.out / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(records)


def finish(ctx: Context, text: str, started: float) -> str:
    """Print the driver's tables and how long it took; return both (all_tables.py collects them)."""
    text = f"{text}\n_{timing(ctx, started)}._\n"
    print(text)
    return text


def timing(ctx: Context, started: float) -> str:
    """A line saying how long the driver took and how many runs it trained or reused."""
    trained = {r["run"]: r for r in ctx.log if not r["reused"]}
    reused = {r["run"] for r in ctx.log if r["reused"]} - set(trained)
    return (
        f"{time.perf_counter() - started:.0f} s in all; {len(trained)} runs trained "
        f"({sum(r['seconds'] for r in trained.values()):.0f} s of training), {len(reused)} reused "
        f"from {ctx.out / 'runs'}"
    )
