"""Option definitions shared by the commands: one flag spelling, one help text, everywhere.

Each alias is an ``Annotated`` type that a command uses as ``name: Alias = default``; the default stays in the
signature so typer shows it. Options that mean something different per command (``--config`` of ``train``
and of ``pretrain``) are declared where they are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# -- training runs (train, pretrain) ----------------------------------------------------------------------
Batch = Annotated[
    int | None, typer.Option("--batch", help="Global minibatch over all processes (default: the preset's).")
]
BatchGpu = Annotated[
    int | None, typer.Option("--batch-gpu", help="Micro-batch per process (default: the preset's).")
]
Runs = Annotated[Path, typer.Option("--out", help="Parent folder of run folders.")]
Resume = Annotated[
    Path | None,
    typer.Option(
        "--resume", help="Run folder or checkpoint to continue (with its saved settings; give --kimg)."
    ),
]
TrainSeed = Annotated[
    int | None,
    typer.Option("--seed", help="Seed of weights, latents and data order (default: the preset's)."),
]
Bf16 = Annotated[
    bool | None, typer.Option("--bf16/--fp32", help="bf16 autocast (CPU and CUDA) (default: the preset's).")
]
Tick = Annotated[float | None, typer.Option("--tick", help="kimg per progress tick (default: the preset's).")]
Snap = Annotated[
    int | None,
    typer.Option("--snap", help="Ticks between snapshots: PNG grid + checkpoint (default: the preset's)."),
]
Flip = Annotated[
    bool | None,
    typer.Option("--flip/--no-flip", help="Random left-right flips of reals (default: the preset's)."),
]
Desc = Annotated[str | None, typer.Option("--desc", help="Run folder suffix (default: PRESET-DATASET).")]
TrainDevice = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if available).")
]
