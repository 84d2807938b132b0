"""Option definitions shared by the commands: one flag spelling, one help text, everywhere.

Each alias is an ``Annotated`` type that a command uses as ``name: Alias = default``; the default stays in the
signature so typer shows it. Options that mean something different per command (``--config`` of ``train``
and of ``pretrain``) are declared where they are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

DEFAULT_CONFIG = "tiny"  # the model preset train, pretrain, prepare (its shape) and demo default to

# -- training runs (train, pretrain) ----------------------------------------------------------------------
Batch = Annotated[
    int | None, typer.Option("--batch", help="Global minibatch over all processes (default: the preset's).")
]
BatchGpu = Annotated[
    int | None, typer.Option("--batch-gpu", help="Micro-batch per process (default: the preset's).")
]
Runs = Annotated[Path, typer.Option("--out", "-o", help="Parent folder of run folders.")]
Resume = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Run folder or checkpoint to continue with its saved settings; give --kimg (default: a new run).",
    ),
]
TrainSeed = Annotated[
    int | None,
    typer.Option("--seed", help="Seed of weights, latents and data order (default: the preset's)."),
]
Bf16 = Annotated[
    bool | None,
    typer.Option(
        "--bf16/--fp32", help="bf16 autocast; default: the preset's, else on for CUDA, off for CPU."
    ),
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
Aug = Annotated[
    str | None,
    typer.Option(
        "--aug",
        help="Discriminator augmentation (Karras et al., NeurIPS 2020): ada (adaptive p) | fixed:P | "
        "diffaugment | none (default: the preset's, else none).",
    ),
]
AugPreset = Annotated[
    str | None,
    typer.Option(
        "--aug-preset",
        help="Transforms --aug may apply: all | laterality (no reflections) | in-plane (anisotropic data) | "
        "intensity (default: all).",
    ),
]
AdaTarget = Annotated[
    float | None,
    typer.Option(
        "--ada-target", help="ada: target of r_t, the mean of sign(D(real)); p rises above it (default 0.6)."
    ),
]
AdaKimg = Annotated[
    float | None,
    typer.Option(
        "--ada-kimg",
        help="ada: kimg over which p can go from 0 to 1 (default 500, the paper's; short runs need less).",
    ),
]
Desc = Annotated[str | None, typer.Option("--desc", help="Run folder suffix (default: PRESET-DATASET).")]
TrainDevice = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if available).")
]


# -- how options render ------------------------------------------------------------------------------------
def _no_placeholder(param: Any) -> Any:
    """A flag takes no value: show no type placeholder for it (typer's rich help writes ``<bool>``)."""
    if param is not None and getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""
    return param


class Command(TyperCommand):
    """A command whose flags, ``--help`` included, render as ``--flag/--no-flag`` without a value."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _no_placeholder(param)

    def get_help_option(self, ctx: Any) -> Any:
        return _no_placeholder(super().get_help_option(ctx))


class Group(TyperGroup):
    """The app: its ``--help`` renders without a value placeholder too."""

    def get_help_option(self, ctx: Any) -> Any:
        return _no_placeholder(super().get_help_option(ctx))


# -- sampling a run (generate, mix, interpolate) --------------------------------------------------------------
Clip = Annotated[
    bool,
    typer.Option(
        "--clip/--no-clip",
        help="Clip to the trained window (CT: the preset's HU window; MRI percentile presets: the dataset's "
        "median range), the only values the model saw; --no-clip keeps the generator's raw extrapolation.",
    ),
]
RunGeometry = Annotated[
    Path | None,
    typer.Option(
        "--data",
        "-d",
        help="Prepared dataset for geometry and units (default: the copy of its manifest the run keeps).",
    ),
]
