"""`medgan3d inflate`: a 2D checkpoint → a 3D checkpoint by weight inflation (Liu et al., arXiv 2208.03934 §3.2, Eq. 3–7).

    medgan3d inflate CKPT_2D --config coca-ss --strategy inflate-1 --parts GD -o CKPT_3D [--seed 0]

Imports are lazy so that `medgan3d --help` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

from medgan3d.cli import command


@command
def inflate(
    ckpt_2d: Path = typer.Argument(
        ..., help="2D checkpoint directory (G/, G_ema/, D/) or a 2D run folder (its latest checkpoint)."
    ),
    config: str = typer.Option(
        ..., "--config", "-c", help="3D preset (e.g. coca-ss) or YAML path: the 3D twin of the 2D model."
    ),
    strategy: str = typer.Option(
        "inflate-1",
        "--strategy",
        "-s",
        help="none | inflate-1 | inflate-2 | inflate-3 | inflate-asc | inflate-nwi (Eq. 3–7).",
    ),
    parts: str = typer.Option("GD", "--parts", help="What to inflate: G (G and G_ema) | D | GD."),
    out: Path = typer.Option(..., "-o", "--out", help="Output 3D checkpoint directory (must not exist)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fresh 3D init and of the N(0, init-std) draws."),
    init_std: float = typer.Option(
        0.1, "--init-std", min=0.0, help="Std of the random 3D kernel before overwriting, in stored units."
    ),
    equalized_lr: str = typer.Option(
        "compensate",
        "--equalized-lr",
        help="compensate: formulas hold for run-time weights (default) | stored: on stored tensors.",
    ),
) -> None:
    """Inflate a 2D StyleGAN2 checkpoint into its 3D twin and write G/, G_ema/, D/ and inflation.json."""
    from medgan3d.console import make_console
    from medgan3d.inflate import inflate_checkpoint

    console = make_console(stderr=True)
    nets = inflate_checkpoint(
        ckpt_2d,
        config,
        strategy,
        parts=parts,
        out_dir=out,
        seed=seed,
        init_std=init_std,
        equalized_lr=equalized_lr,
    )
    inflated = (
        "nothing (fresh 3D init)"
        if strategy == "none"
        else {"G": "G, G_ema", "D": "D"}.get(parts, "G, G_ema, D")
    )
    shape = tuple(getattr(nets["G"], "img_shape", ()))
    console.print(f"[green]{strategy}[/green] inflated {inflated} -> {out}  (3D output {shape}, seed {seed})")
