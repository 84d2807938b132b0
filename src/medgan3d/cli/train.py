"""`medgan3d train`: train a model of any family on a prepared dataset; :func:`start_run` is shared with
`medgan3d pretrain` (the same loop on a 2D twin)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from medgan3d.cli import command
from medgan3d.cli import options as opt
from medgan3d.errors import UsageError

if TYPE_CHECKING:
    from medgan3d.config import Preset
    from medgan3d.training.loop import TrainConfig

# TrainConfig keys set by flags: a refused value is named by the flag the user typed
_FLAGS = {
    "kimg": "--kimg",
    "batch": "--batch",
    "batch_gpu": "--batch-gpu",
    "lr": "--lr",
    "tick_kimg": "--tick",
    "snapshot_ticks": "--snap",
    "seed": "--seed",
    "bf16": "--bf16",
    "flip": "--flip",
    "metrics": "--metrics",
    "cond": "--no-cond",
    "aug": "--aug",
    "aug_preset": "--aug-preset",
    "ada_target": "--ada-target",
    "ada_kimg": "--ada-kimg",
}
_APPLY_ON_RESUME = {"--resume", "--kimg", "--device"}


@dataclass(frozen=True)
class RunOptions:
    """What `train` and `pretrain` take from the command line; ``None``: the preset's value."""

    data: Path | None
    config: str
    out: Path
    kimg: float | None = None
    batch: int | None = None
    batch_gpu: int | None = None
    resume: Path | None = None
    seed: int | None = None
    bf16: bool | None = None
    lr: float | None = None
    gamma: float | None = None
    tick: float | None = None
    snap: int | None = None
    metrics: str | None = None
    weights_2d: str | None = None
    weights_3d: str | None = None
    flip: bool | None = None
    desc: str | None = None
    device: str | None = None
    cond: bool | None = None
    aug: str | None = None
    aug_preset: str | None = None
    ada_target: float | None = None
    ada_kimg: float | None = None

    def overrides(self) -> dict[str, Any]:
        """The TrainConfig fields the flags set."""
        given = {
            "kimg": self.kimg,
            "batch": self.batch,
            "batch_gpu": self.batch_gpu,
            "seed": self.seed,
            "bf16": self.bf16,
            "lr": self.lr,
            "tick_kimg": self.tick,
            "snapshot_ticks": self.snap,
            "flip": self.flip,
            "cond": self.cond,
            "aug": self.aug,
            "aug_preset": self.aug_preset,
            "ada_target": self.ada_target,
            "ada_kimg": self.ada_kimg,
        }
        found: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if self.metrics:
            from medgan3d.config import parse_metric_names

            found["metrics"] = parse_metric_names(self.metrics)
        return found


@dataclass(frozen=True)
class Inflation:
    """Start a 3D run from an inflated 2D run (:func:`~medgan3d.inflate.inflate_checkpoint`'s arguments)."""

    init_from: Path | None = None
    strategy: str = "inflate-1"
    parts: str = "GD"
    equalized_lr: str = "compensate"
    init_std: float = 0.1

    def info(self) -> dict[str, Any]:
        """What the run records about its initialisation."""
        return {
            "from": str(self.init_from),
            "strategy": self.strategy,
            "parts": self.parts,
            "equalized_lr": self.equalized_lr,
            "init_std": self.init_std,
        }


@command
def train(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None,
        "--data",
        "-d",
        help="Prepared dataset folder (medgan3d prepare); no default: required unless --resume.",
    ),
    config: str = typer.Option(opt.DEFAULT_CONFIG, "--config", "-c", help="Preset name or YAML path."),
    kimg: float | None = typer.Option(
        None,
        "--kimg",
        help="Total training length in thousands of images (default: the preset's, e.g. tiny 6, paper presets 5000).",
    ),
    batch: opt.Batch = None,
    batch_gpu: opt.BatchGpu = None,
    out: opt.Runs = Path("runs"),
    resume: opt.Resume = None,
    seed: opt.TrainSeed = None,
    bf16: opt.Bf16 = None,
    lr: float | None = typer.Option(
        None,
        "--lr",
        help="StyleGAN2: default 0.0025, or 0.002 from inflated weights. HA-GAN: G's rate (default 1e-4); D, E keep their ratio.",
    ),
    gamma: float | None = typer.Option(None, "--gamma", help="StyleGAN2 only: R1 weight γ (default 0.0512)."),
    tick: opt.Tick = None,
    snap: opt.Snap = None,
    metrics: str | None = typer.Option(
        None,
        "--metrics",
        "-m",
        help="Comma-separated metrics at snapshots, e.g. fid,mmd (default: the preset's, usually none).",
    ),
    weights_2d: str | None = typer.Option(
        None,
        "--weights-2d",
        help="Snapshot scores: weights file of the 2D extractor, as evaluate's (sets"
        " train.metrics_settings.weights_2d; default: the preset's, else the cached FID Inception).",
    ),
    weights_3d: str | None = typer.Option(
        None,
        "--weights-3d",
        help="Snapshot scores: weights file of the 3D extractor, as evaluate's (sets"
        " train.metrics_settings.weights_3d; default: the preset's, else the cached MedicalNet).",
    ),
    flip: opt.Flip = None,
    aug: opt.Aug = None,
    aug_preset: opt.AugPreset = None,
    ada_target: opt.AdaTarget = None,
    ada_kimg: opt.AdaKimg = None,
    cond: bool | None = typer.Option(
        None,
        "--cond/--no-cond",
        help="On a labelled dataset (prepare --labels) train a conditional model (default; StyleGAN2 family and "
        "HA-GAN), or an unconditional one with --no-cond.",
    ),
    desc: opt.Desc = None,
    device: opt.TrainDevice = None,
    init_from: Path | None = typer.Option(
        None, "--init-from", help="2D run/checkpoint to inflate from (default: none, a fresh init)."
    ),
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
    opts = RunOptions(
        data=data,
        config=config,
        out=out,
        kimg=kimg,
        batch=batch,
        batch_gpu=batch_gpu,
        resume=resume,
        seed=seed,
        bf16=bf16,
        lr=lr,
        gamma=gamma,
        tick=tick,
        snap=snap,
        metrics=metrics,
        weights_2d=weights_2d,
        weights_3d=weights_3d,
        flip=flip,
        desc=desc,
        device=device,
        cond=cond,
        aug=aug,
        aug_preset=aug_preset,
        ada_target=ada_target,
        ada_kimg=ada_kimg,
    )
    start_run(ctx, opts, Inflation(init_from, inflate, inflate_parts, equalized_lr, init_std))


def start_run(ctx: typer.Context, opts: RunOptions, inflation: Inflation | None = None) -> None:
    """Every check that can fail runs before training starts, so a refused command leaves no run folder."""
    from medgan3d.cli.checks import check_device, check_out_folder, check_prepared, explicit_options, warn
    from medgan3d.errors import check_batch_fits_model

    if opts.data is None and opts.resume is None:
        raise UsageError("give --data DIR (or --resume RUN)")
    if opts.resume is not None:
        if opts.kimg is None:
            raise UsageError("--resume needs --kimg (the new total length)")
        ignored = [f for f in explicit_options(ctx) if f not in _APPLY_ON_RESUME]
        if ignored:
            warn(
                f"--resume continues {opts.resume} with its saved settings; ignoring {', '.join(ignored)} "
                "(only --kimg and --device apply)"
            )
        preset, cfg = _configure(opts.config, {"kimg": opts.kimg})
    else:
        check_out_folder(opts.out)
        preset, cfg = _configure(opts.config, opts.overrides())
        cfg = _with_gamma(cfg, opts.gamma)
        cfg = _with_weights(cfg, opts.weights_2d, opts.weights_3d)
        check_batch_fits_model(preset.model, cfg)
    check_device(opts.device)
    if opts.resume is None:
        assert opts.data is not None
        check_prepared(opts.data)
    _run(preset, cfg, opts, inflation or Inflation())


def _run(preset: Preset, cfg: TrainConfig, opts: RunOptions, inflation: Inflation) -> None:
    from medgan3d.training.loop import train as run_training

    init, init_info = None, None
    if inflation.init_from is not None:
        from medgan3d.inflate import inflate_checkpoint

        init = inflate_checkpoint(
            inflation.init_from,
            preset.model,
            inflation.strategy,
            parts=inflation.parts,
            seed=cfg.seed,
            init_std=inflation.init_std,
            equalized_lr=inflation.equalized_lr,
        )
        init_info = inflation.info()
    run_dir = run_training(
        opts.data or Path("."),
        preset.model,
        cfg,
        outdir=opts.out,
        desc=opts.desc,
        resume=opts.resume,
        init=init,
        init_info=init_info,
        preset=preset.name,
        device=opts.device,
    )
    typer.echo(f"run folder: {run_dir}")


def _configure(config: str, overrides: dict[str, Any]) -> tuple[Preset, TrainConfig]:
    """The preset and its train section with the flags applied; a bad value is named as the user gave it."""
    from medgan3d.config import load_preset
    from medgan3d.training.family import family_for

    try:
        preset = load_preset(config)
        family_for(preset.model)  # a family the loop knows
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    source = f"preset {config}"
    try:
        return preset, dataclasses.replace(preset.train, **overrides)
    except ValueError as exc:
        key = str(exc).split(" ", 1)[0]
        flag = _FLAGS.get(key) if key in overrides else None
        raise UsageError(f"{flag}{str(exc)[len(key) :]}" if flag else f"{source}: {exc}") from exc


def _with_weights(cfg: TrainConfig, weights_2d: str | None, weights_3d: str | None) -> TrainConfig:
    """``cfg`` whose snapshot scores use the extractor weights given (``--weights-2d/--weights-3d``)."""
    if weights_2d is None and weights_3d is None:
        return cfg
    from medgan3d.config import MetricsConfig

    settings = cfg.metrics_settings or MetricsConfig()
    settings = dataclasses.replace(
        settings,
        weights_2d=settings.weights_2d if weights_2d is None else weights_2d,
        weights_3d=settings.weights_3d if weights_3d is None else weights_3d,
    )
    return dataclasses.replace(cfg, metrics_settings=settings)


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
        return dataclasses.replace(cfg, loss={**(loss or {}), "r1_gamma": gamma})  # type: ignore[arg-type]  # resolved later
    return dataclasses.replace(cfg, loss=dataclasses.replace(loss, r1_gamma=gamma))  # type: ignore[arg-type]  # has r1_gamma (checked)
