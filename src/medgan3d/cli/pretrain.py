"""`medgan3d pretrain`: the 2D twin of a 3D preset on the axial slices of a prepared dataset, through the same
loop as `medgan3d train` (:func:`medgan3d.cli.train.start_run`)."""

from __future__ import annotations

from pathlib import Path

import typer

from medgan3d.cli import command
from medgan3d.cli import options as opt
from medgan3d.cli.train import RunOptions, start_run


@command
def pretrain(
    ctx: typer.Context,
    data: Path = typer.Option(
        ..., "--data", "-d", help="Prepared dataset folder; its axial slices are used."
    ),
    config: str = typer.Option(
        opt.DEFAULT_CONFIG, "--config", "-c", help="3D preset whose 2D twin is trained."
    ),
    kimg: float | None = typer.Option(
        None,
        "--kimg",
        help="Total length in thousands of slices (default: the preset's pretrain_kimg, e.g. tiny 4, paper "
        "presets 25000 as in Liu et al., arXiv 2208.03934 §4.2.3).",
    ),
    batch: opt.Batch = None,
    batch_gpu: opt.BatchGpu = None,
    out: opt.Runs = Path("runs"),
    resume: opt.Resume = None,
    seed: opt.TrainSeed = None,
    bf16: opt.Bf16 = None,
    lr: float | None = typer.Option(None, "--lr", help="Learning rate (default: the preset's)."),
    tick: opt.Tick = None,
    snap: opt.Snap = None,
    flip: opt.Flip = None,
    aug: opt.Aug = None,
    aug_preset: opt.AugPreset = None,
    ada_target: opt.AdaTarget = None,
    ada_kimg: opt.AdaKimg = None,
    desc: opt.Desc = None,
    device: opt.TrainDevice = None,
) -> None:
    """Pretrain the 2D twin of a 3D preset on the axial slices of a prepared dataset (Liu et al., arXiv 2208.03934 §3.2).

    Every axial slice of the training scans when the dataset has them (`prepare --all-slices`, or a preset that
    resizes the depth), else the slices of the cached volumes, with a warning."""
    twin = config if config.endswith("-2d") or config.endswith((".yaml", ".yml")) else f"{config}-2d"
    if resume is None:
        _report_slices(data)
        kimg = _preset_length(twin) if kimg is None else kimg
    opts = RunOptions(
        data=data,
        config=twin,
        out=out,
        kimg=kimg,
        batch=batch,
        batch_gpu=batch_gpu,
        resume=resume,
        seed=seed,
        bf16=bf16,
        lr=lr,
        tick=tick,
        snap=snap,
        flip=flip,
        desc=desc,
        device=device,
        aug=aug,
        aug_preset=aug_preset,
        ada_target=ada_target,
        ada_kimg=ada_kimg,
    )
    start_run(ctx, opts)


def _preset_length(config: str) -> float:
    """The preset's ``pretrain_kimg``; an unknown preset is one line naming it."""
    from medgan3d.config import load_preset
    from medgan3d.errors import UsageError

    try:
        return float(load_preset(config).pretrain_kimg)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _report_slices(data: Path) -> None:
    """Say which axial slices pretraining will see; warn when only the cached depth window is there."""
    from medgan3d.cli.checks import check_prepared, warn
    from medgan3d.data import SliceDataset

    check_prepared(data)
    slices = SliceDataset(data, split="train")
    if slices.slices == "window":
        warn(
            f"{data} holds only the cached window of each scan's axial slices ({len(slices)} train slices); "
            "the paper pretrains on all of them: prepare the scans again with --all-slices"
        )
    else:
        typer.echo(f"pretraining on all {len(slices)} axial slices of the train split of {data}", err=True)
