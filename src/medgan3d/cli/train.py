"""`medgan3d train` and `medgan3d generate`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from medgan3d.cli import command
from medgan3d.errors import UsageError

if TYPE_CHECKING:
    from medgan3d.config import Preset
    from medgan3d.training.loop import TrainConfig

# TrainConfig keys set by flags: a refused value is named by the flag the user typed
_FLAGS = {"kimg": "--kimg", "batch": "--batch", "batch_gpu": "--batch-gpu", "lr": "--lr", "tick_kimg": "--tick",
          "snapshot_ticks": "--snap", "seed": "--seed", "bf16": "--bf16", "flip": "--flip", "metrics": "--metrics"}  # fmt: skip
_APPLY_ON_RESUME = {"--resume", "--kimg", "--device"}
# Liu et al., arXiv 2208.03934 §4.2.3: "For 2D GANs pre-training, the models are fed with 25,000K images in total" (3D: 5,000K)
PRETRAIN_KIMG = 25000.0


@command
def train(
    ctx: typer.Context,
    data: Path | None = typer.Option(None, "--data", help="Prepared dataset folder (medgan3d prepare)."),
    config: str = typer.Option("tiny", "--config", "-c", help="Preset name or YAML path."),
    kimg: float | None = typer.Option(None, "--kimg", help="Total training length in thousands of images."),
    batch: int | None = typer.Option(None, "--batch", help="Global minibatch (all processes)."),
    batch_gpu: int | None = typer.Option(None, "--batch-gpu", help="Micro-batch per process."),
    out: Path = typer.Option(Path("runs"), "--out", help="Parent folder of run folders."),
    resume: Path | None = typer.Option(
        None, "--resume", help="Run folder or checkpoint to continue (with its saved settings; give --kimg)."
    ),
    seed: int | None = typer.Option(None, "--seed"),
    bf16: bool | None = typer.Option(None, "--bf16/--fp32", help="bf16 autocast (CPU and CUDA)."),
    lr: float | None = typer.Option(
        None,
        "--lr",
        help="StyleGAN2: default 0.0025, or 0.002 from inflated weights. HA-GAN: G's rate (default 1e-4); D, E keep their ratio.",
    ),
    gamma: float | None = typer.Option(None, "--gamma", help="StyleGAN2 only: R1 weight γ (default 0.0512)."),
    tick: float | None = typer.Option(None, "--tick", help="kimg per progress tick."),
    snap: int | None = typer.Option(None, "--snap", help="Ticks between snapshots (PNG grid + checkpoint)."),
    metrics: str | None = typer.Option(None, "--metrics", help="Comma-separated metrics at snapshots."),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Random left-right flips of reals."),
    desc: str | None = typer.Option(None, "--desc", help="Run folder suffix."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)."),
    init_from: Path | None = typer.Option(None, "--init-from", help="2D run/checkpoint to inflate from."),
    inflate: str = typer.Option(
        "inflate-1", "--inflate", help="none|inflate-1|-2|-3|-asc|-nwi (Liu et al., arXiv 2208.03934 §3.2)."
    ),
    inflate_parts: str = typer.Option("GD", "--inflate-parts", help="G, D or GD."),
    equalized_lr: str = typer.Option(
        "compensate",
        "--equalized-lr",
        help="Inflation: compensate (Eq. 3-7 hold for run-time weights) | stored (on stored tensors).",
    ),
    init_std: float = typer.Option(
        0.1,
        "--init-std",
        min=0.0,
        help="Inflation: std of the random 3D kernel before overwriting (stored units).",
    ),
) -> None:
    """Train a model of any family named by the preset: StyleGAN2 (3D on volumes, or a 2D twin `NAME-2d` on axial
    slices) or HA-GAN (`hagan-128`, `hagan-256`, `hagan-tiny`, ...)."""
    _train(**locals())


@command
def pretrain(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", help="Prepared dataset folder; its axial slices are used."),
    config: str = typer.Option("tiny", "--config", "-c", help="3D preset whose 2D twin is trained."),
    kimg: float | None = typer.Option(
        None,
        "--kimg",
        help=f"Total length in thousands of slices (default {PRETRAIN_KIMG:.0f}, Liu et al., arXiv 2208.03934 §4.2.3).",
    ),
    batch: int | None = typer.Option(None, "--batch"),
    batch_gpu: int | None = typer.Option(None, "--batch-gpu"),
    out: Path = typer.Option(Path("runs"), "--out"),
    resume: Path | None = typer.Option(None, "--resume"),
    seed: int | None = typer.Option(None, "--seed"),
    bf16: bool | None = typer.Option(None, "--bf16/--fp32"),
    lr: float | None = typer.Option(None, "--lr"),
    tick: float | None = typer.Option(None, "--tick"),
    snap: int | None = typer.Option(None, "--snap"),
    flip: bool | None = typer.Option(None, "--flip/--no-flip"),
    desc: str | None = typer.Option(None, "--desc"),
    device: str | None = typer.Option(None, "--device"),
) -> None:
    """Pretrain the 2D twin of a 3D preset on the axial slices of a prepared dataset (Liu et al., arXiv 2208.03934 §3.2).

    Every axial slice of the training scans when the dataset has them (`prepare --all-slices`, or a preset that
    resizes the depth), else the slices of the cached volumes, with a warning."""
    twin = config if config.endswith("-2d") or config.endswith((".yaml", ".yml")) else f"{config}-2d"
    if resume is None:
        _report_slices(data)
        kimg = PRETRAIN_KIMG if kimg is None else kimg
    _train(**(locals() | {"config": twin, "gamma": None, "metrics": None, "init_from": None}))


def _report_slices(data: Path) -> None:
    """Say which axial slices pretraining will see; warn when only the cached depth window is there."""
    from medgan3d.cli.checks import check_prepared, warn
    from medgan3d.data import SliceDataset

    check_prepared(data)
    slices = SliceDataset(data, split="train")
    if slices.slices == "window":
        warn(f"{data} holds only the cached window of each scan's axial slices ({len(slices)} train slices); "
             "the paper pretrains on all of them: prepare the scans again with --all-slices")  # fmt: skip
    else:
        typer.echo(f"pretraining on all {len(slices)} axial slices of the train split of {data}", err=True)


def _train(
    ctx: typer.Context, data: Path | None, config: str, kimg: float | None, batch: int | None,
    batch_gpu: int | None, out: Path, resume: Path | None, seed: int | None, bf16: bool | None,
    lr: float | None, gamma: float | None, tick: float | None, snap: int | None, metrics: str | None,
    flip: bool | None, desc: str | None, device: str | None, init_from: Path | None = None,
    inflate: str = "inflate-1", inflate_parts: str = "GD", equalized_lr: str = "compensate",
    init_std: float = 0.1, **_: object,
) -> None:  # fmt: skip
    """Every check that can fail runs before training starts, so a refused command leaves no run folder."""
    from medgan3d.cli.checks import check_device, check_out_folder, check_prepared, explicit_options, warn
    from medgan3d.errors import check_batch_fits_model

    if data is None and resume is None:
        raise UsageError("give --data DIR (or --resume RUN)")
    if resume is not None:
        if kimg is None:
            raise UsageError("--resume needs --kimg (the new total length)")
        ignored = [f for f in explicit_options(ctx) if f not in _APPLY_ON_RESUME]
        if ignored:
            warn(f"--resume continues {resume} with its saved settings; ignoring {', '.join(ignored)} "
                 "(only --kimg and --device apply)")  # fmt: skip
        preset, cfg = _configure(config, {"kimg": kimg})
    else:
        check_out_folder(out)
        overrides = {"kimg": kimg, "batch": batch, "batch_gpu": batch_gpu, "seed": seed, "bf16": bf16, "lr": lr,
                     "tick_kimg": tick, "snapshot_ticks": snap, "flip": flip}  # fmt: skip
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if metrics:
            overrides["metrics"] = _metric_names(metrics)
        preset, cfg = _configure(config, overrides)
        cfg = _with_gamma(cfg, gamma)
        check_batch_fits_model(preset.model, cfg)
    check_device(device)
    if resume is None:
        assert data is not None
        check_prepared(data)
    inflation = {
        "strategy": inflate,
        "parts": inflate_parts,
        "equalized_lr": equalized_lr,
        "init_std": init_std,
    }
    _run(preset, cfg, data, out, desc, resume, device, init_from, inflation)


def _run(preset: Preset, cfg: TrainConfig, data: Path | None, out: Path, desc: str | None, resume: Path | None,
         device: str | None, init_from: Path | None, inflation: dict[str, Any]) -> None:  # fmt: skip
    """``inflation``: strategy, parts, equalized_lr, init_std of :func:`~medgan3d.inflate.inflate_checkpoint`."""
    from medgan3d.training.loop import train as run_training

    init, init_info = None, None
    if init_from is not None:
        from medgan3d.inflate import inflate_checkpoint

        init = inflate_checkpoint(init_from, preset.model, inflation["strategy"], parts=inflation["parts"],
                                  seed=cfg.seed, init_std=inflation["init_std"],
                                  equalized_lr=inflation["equalized_lr"])  # fmt: skip
        init_info = {"from": str(init_from), **inflation}
    run_dir = run_training(data or Path("."), preset.model, cfg, outdir=out, desc=desc, resume=resume, init=init,
                           init_info=init_info, preset=preset.name, device=device)  # fmt: skip
    typer.echo(f"run folder: {run_dir}")


def _configure(config: str, overrides: dict[str, Any]) -> tuple[Preset, TrainConfig]:
    """The preset and its train section with the flags applied; a bad value is named as the user gave it."""
    from medgan3d.config import load_preset
    from medgan3d.training.family import family_for
    from medgan3d.training.loop import train_config_from_dict

    try:
        preset = load_preset(config)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    source = f"preset {config}"
    try:
        family = family_for(preset.model)
        cfg = train_config_from_dict(dict(preset.extra.get("train", {})), source, family)
    except ValueError as exc:
        raise UsageError(str(exc) if str(exc).startswith(source) else f"{source}: {exc}") from exc
    try:
        return preset, dataclasses.replace(cfg, **overrides)
    except ValueError as exc:
        key = str(exc).split(" ", 1)[0]
        flag = _FLAGS.get(key) if key in overrides else None
        raise UsageError(f"{flag}{str(exc)[len(key) :]}" if flag else f"{source}: {exc}") from exc


def _metric_names(text: str) -> tuple[str, ...]:
    from medgan3d.metrics import METRICS

    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise UsageError(f"--metrics {text!r}: unknown {unknown}; choose from {','.join(METRICS)}")
    return names


def _with_gamma(cfg: TrainConfig, gamma: float | None) -> TrainConfig:
    if gamma is None:
        return cfg
    if not 0 <= gamma < float("inf"):
        raise UsageError(f"--gamma must be >= 0, got {gamma}")
    loss = cfg.loss
    if loss is not None and not isinstance(loss, dict) and not hasattr(loss, "r1_gamma"):
        raise UsageError(
            f"--gamma (the R1 weight) applies to StyleGAN2 presets; {type(loss).__name__} has no R1"
        )
    if loss is None or isinstance(loss, dict):  # settings not yet resolved to the family's dataclass
        return dataclasses.replace(cfg, loss={**(loss or {}), "r1_gamma": gamma})
    return dataclasses.replace(cfg, loss=dataclasses.replace(loss, r1_gamma=gamma))


def _parse_seeds(text: str) -> list[int]:
    """``0-9,42`` → [0, ..., 9, 42]; a UsageError names the part that is not a seed or a range."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                seeds += range(int(a), int(b) + 1)
            else:
                seeds.append(int(part))
        except ValueError:
            raise UsageError(f"--seeds: {part!r} is not a seed or a range like 0-9") from None
    if not seeds:
        raise UsageError(f"--seeds {text!r}: no seeds (a range is FIRST-LAST with FIRST <= LAST)")
    return seeds


@command
def generate(
    source: Path = typer.Argument(
        ..., help="Run folder (latest checkpoint), checkpoint, or saved generator."
    ),
    n: int = typer.Option(8, "-n", min=1, help="Number of volumes (seeds 0..n-1) unless --seeds is given."),
    seeds: str | None = typer.Option(None, "--seeds", help="e.g. 0-9,42"),
    trunc: float = typer.Option(1.0, "--trunc", help="Truncation ψ (1 = none)."),
    out: Path = typer.Option(Path("samples"), "--out", "-o", help="Output folder."),
    data: Path | None = typer.Option(None, "--data", help="Dataset whose manifest maps intensities back."),
    raw: bool = typer.Option(False, "--raw", help="Keep model intensities [-1, 1] instead of data units."),
    clip: bool = typer.Option(
        True,
        "--clip/--no-clip",
        help="Clip to the trained window (CT: the preset's HU window; MRI percentile presets: the dataset's "
        "median range), the only values the model saw; --no-clip keeps the generator's raw extrapolation.",
    ),
    chunk_depth: int = typer.Option(
        8, "--chunk-depth", min=0, help="HA-GAN: latent slices per decoding slab (0: whole volume at once)."
    ),
) -> None:
    """Sample volumes as NIfTI (data spacing/affine, intensities in data units, e.g. HU) + PNG previews.

    Each seedNNNN.nii.gz is marked synthetic: its header's descrip names medgan3d, the checkpoint's kimg and
    the window its units are in (cal_min/cal_max = that window), and seedNNNN.json beside it (a BIDS-style
    sidecar) records run, checkpoint, seed, psi, family, window and "synthetic": true. HA-GAN runs write
    full-resolution volumes (e.g. 256³), decoded slab by slab with exact statistics."""
    from medgan3d.cli.checks import check_out_folder

    chosen = _parse_seeds(seeds) if seeds else list(range(n))
    check_out_folder(out)
    from medgan3d.generate import find_manifest, sample_to_nifti
    from medgan3d.viz import MODEL_WINDOW, IntensityWindow

    written = sample_to_nifti(
        source, chosen, out, psi=trunc, data=data, raw=raw, chunk_depth=chunk_depth or None, clip=clip
    )
    window = MODEL_WINDOW if raw else IntensityWindow.of_manifest(find_manifest(source, data))
    state = "clipped to" if clip else "not clipped to"
    typer.echo(f"{len(written)} synthetic volumes + JSON sidecars → {out} (preview: {out / 'preview.png'}); "
               f"values in {window.describe()}, {state} the window")  # fmt: skip
