"""Checkpoint layout and loading (weights are safetensors, never pickles).

A run folder ``runs/NNNNN-<desc>/`` holds ``checkpoints/ckpt-KKKKKKKK/`` (K = images seen, zero-padded so that
names sort by progress). A checkpoint directory holds one ``save_pretrained`` directory per network —
``G/``, ``G_ema/``, ``D/`` — plus the training state beside them. A checkpoint directory is written under a
temp name and renamed into place, so one that exists is complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from medgan3d.modeling import CONFIG_NAME, WEIGHTS_NAME
from medgan3d.networks import Generator

CHECKPOINTS_DIR = "checkpoints"
CKPT_PREFIX = "ckpt-"
NETWORKS = ("G", "G_ema", "D")


def is_network_dir(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(CKPT_PREFIX))


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint directory from a run folder (its latest checkpoint) or a checkpoint directory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run or checkpoint")
    if (path / "G_ema").is_dir() or (path / "G").is_dir():
        return path
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(f"{path}: not a checkpoint and holds no {CHECKPOINTS_DIR}/{CKPT_PREFIX}* directory")
    return checkpoints[-1]


def load_generator(path: str | os.PathLike[str], ema: bool = True, device: str = "cpu") -> Generator:
    """A generator from a run folder (latest checkpoint), a checkpoint, or a saved Generator directory.

    ``ema=True`` prefers ``G_ema`` (what StyleGAN2 samples from), falling back to ``G``.
    """
    path = Path(path)
    if is_network_dir(path):
        return Generator.from_pretrained(path, device)
    ckpt = resolve_checkpoint(path)
    for name in ("G_ema", "G") if ema else ("G",):
        if is_network_dir(ckpt / name):
            return Generator.from_pretrained(ckpt / name, device)
    raise FileNotFoundError(f"{ckpt}: holds no G_ema/ or G/ network directory")
