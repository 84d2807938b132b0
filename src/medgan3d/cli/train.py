"""`medgan3d train` and `medgan3d generate`."""

from __future__ import annotations

from pathlib import Path

import typer


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg="red")
    return typer.Exit(2)


def train(
    data: Path | None = typer.Option(None, "--data", help="Prepared dataset folder (medgan3d prepare)."),
    config: str = typer.Option("tiny", "--config", "-c", help="Preset name or YAML path."),
    kimg: float | None = typer.Option(None, "--kimg", help="Total training length in thousands of images."),
    batch: int | None = typer.Option(None, "--batch", help="Global minibatch (all processes)."),
    batch_gpu: int | None = typer.Option(None, "--batch-gpu", help="Micro-batch per process."),
    out: Path = typer.Option(Path("runs"), "--out", help="Parent folder of run folders."),
    resume: Path | None = typer.Option(None, "--resume", help="Run folder or checkpoint to continue."),
    seed: int | None = typer.Option(None, "--seed"),
    bf16: bool | None = typer.Option(None, "--bf16/--fp32", help="bf16 autocast (CPU and CUDA)."),
    lr: float | None = typer.Option(None, "--lr", help="Default 0.0025, or 0.002 from inflated weights."),
    gamma: float | None = typer.Option(None, "--gamma", help="R1 weight γ (default 0.0512)."),
    tick: float | None = typer.Option(None, "--tick", help="kimg per progress tick."),
    snap: int | None = typer.Option(None, "--snap", help="Ticks between snapshots (PNG grid + checkpoint)."),
    metrics: str | None = typer.Option(None, "--metrics", help="Comma-separated metrics at snapshots."),
    flip: bool | None = typer.Option(None, "--flip/--no-flip", help="Random left-right flips of reals."),
    desc: str | None = typer.Option(None, "--desc", help="Run folder suffix."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)."),
    init_from: Path | None = typer.Option(None, "--init-from", help="2D run/checkpoint to inflate from."),
    inflate: str = typer.Option(
        "inflate-1", "--inflate", help="none|inflate-1|-2|-3|-asc|-nwi (seed 001 §3.2)."
    ),
    inflate_parts: str = typer.Option("GD", "--inflate-parts", help="G, D or GD."),
) -> None:
    """Train a StyleGAN2-family model (3D on volumes, or a 2D twin `NAME-2d` on axial slices)."""
    _train(**locals())


def pretrain(
    data: Path = typer.Option(..., "--data", help="Prepared dataset folder; its axial slices are used."),
    config: str = typer.Option("tiny", "--config", "-c", help="3D preset whose 2D twin is trained."),
    kimg: float | None = typer.Option(None, "--kimg", help="Total length in thousands of slices."),
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
    """Pretrain the 2D twin of a 3D preset on the axial slices of a prepared dataset (seed 001 §3.2)."""
    twin = config if config.endswith("-2d") or config.endswith((".yaml", ".yml")) else f"{config}-2d"
    _train(**(locals() | {"config": twin, "gamma": None, "metrics": None, "init_from": None}))


def _train(
    data: Path | None, config: str, kimg: float | None, batch: int | None, batch_gpu: int | None, out: Path,
    resume: Path | None, seed: int | None, bf16: bool | None, lr: float | None, gamma: float | None,
    tick: float | None, snap: int | None, metrics: str | None, flip: bool | None, desc: str | None,
    device: str | None, init_from: Path | None = None, inflate: str = "inflate-1", inflate_parts: str = "GD",
    **_: object,
) -> None:  # fmt: skip
    import dataclasses

    from medgan3d.config import load_preset
    from medgan3d.training.loop import TrainingError, train_config_from_dict
    from medgan3d.training.loop import train as run_training

    if data is None and resume is None:
        raise _fail("give --data DIR (or --resume RUN)")
    try:
        preset = load_preset(config)
        cfg = train_config_from_dict(dict(preset.extra.get("train", {})), f"preset {config}")
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    overrides = {"kimg": kimg, "batch": batch, "batch_gpu": batch_gpu, "seed": seed, "bf16": bf16, "lr": lr,
                 "tick_kimg": tick, "snapshot_ticks": snap, "flip": flip}  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if metrics:
        overrides["metrics"] = tuple(m.strip() for m in metrics.split(",") if m.strip())
    cfg = dataclasses.replace(cfg, **overrides)
    if gamma is not None:
        cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, r1_gamma=gamma))
    if resume is not None and kimg is None:
        raise _fail("--resume needs --kimg (the new total length)")
    init, init_info = None, None
    try:
        if init_from is not None:
            from medgan3d.inflate import inflate_checkpoint

            init = inflate_checkpoint(init_from, preset.model, inflate, parts=inflate_parts, seed=cfg.seed)
            init_info = {"from": str(init_from), "strategy": inflate, "parts": inflate_parts}
        run_dir = run_training(data or Path("."), preset.model, cfg, outdir=out, desc=desc, resume=resume, init=init,
                               init_info=init_info, preset=preset.name, device=device)  # fmt: skip
    except (TrainingError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"run folder: {run_dir}")


def _parse_seeds(text: str) -> list[int]:
    """``0-9,42`` → [0, ..., 9, 42]; a ValueError names the part that is not a seed or a range."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                seeds += range(int(a), int(b) + 1)
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"--seeds: {part!r} is not a seed or a range like 0-9") from None
    return seeds


def generate(
    source: Path = typer.Argument(
        ..., help="Run folder (latest checkpoint), checkpoint, or saved generator."
    ),
    n: int = typer.Option(8, "-n", help="Number of volumes (seeds 0..n-1) unless --seeds is given."),
    seeds: str | None = typer.Option(None, "--seeds", help="e.g. 0-9,42"),
    trunc: float = typer.Option(1.0, "--trunc", help="Truncation ψ (1 = none)."),
    out: Path = typer.Option(Path("samples"), "--out", "-o", help="Output folder."),
    data: Path | None = typer.Option(None, "--data", help="Dataset whose manifest maps intensities back."),
    raw: bool = typer.Option(False, "--raw", help="Keep model intensities [-1, 1] instead of data units."),
) -> None:
    """Sample volumes as NIfTI (data spacing/affine, intensities in data units, e.g. HU) + PNG previews."""
    from medgan3d.generate import sample_to_nifti

    try:
        chosen = _parse_seeds(seeds) if seeds else list(range(n))
        written = sample_to_nifti(source, chosen, out, psi=trunc, data=data, raw=raw)
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{len(written)} volumes → {out} (preview: {out / 'preview.png'})")
