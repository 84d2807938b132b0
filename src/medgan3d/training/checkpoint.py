"""Checkpoint layout and loading (weights are safetensors, never pickles).

A run folder ``runs/NNNNN-<desc>/`` holds ``checkpoints/ckpt-KKKKKKKK/`` (K = images seen, zero-padded so that
names sort by progress). A checkpoint directory holds one ``save_pretrained`` directory per network —
``G/``, ``G_ema/``, ``D/`` — plus the training state beside them. A checkpoint directory is written under a
temp name and renamed into place, so one that exists is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

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
        raise FileNotFoundError(
            f"{path}: not a checkpoint and holds no {CHECKPOINTS_DIR}/{CKPT_PREFIX}* directory"
        )
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


# --------------------------------------------------------------------------------------------------
# Full training state (issue 4): save / restore
# --------------------------------------------------------------------------------------------------

STATE_NAME = "training_state.json"
TENSORS_NAME = "training_state.safetensors"


def checkpoint_name(cur_nimg: int) -> str:
    return f"{CKPT_PREFIX}{cur_nimg:09d}"


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    sd = opt.state_dict()
    tensors = {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"opt.{name}.{idx}.{key}"] = t.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def _restore_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                       groups: list) -> None:  # fmt: skip
    prefix = f"opt.{name}."
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix) :].split(".", 1)
            state.setdefault(int(idx), {})[field] = value
    opt.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    cur_nimg: int,
    networks: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    keep_last: int = 3,
) -> Path:
    """Write ``checkpoints/ckpt-<nimg>/`` atomically (temp dir + rename), then drop all but the last N."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(cur_nimg)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        for name, net in networks.items():
            net.save_pretrained(tmp / name)  # type: ignore[operator]
        all_tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        groups = {}
        for name, opt in optimizers.items():
            opt_tensors, groups[name] = _optimizer_tensors(name, opt)
            all_tensors |= opt_tensors
        save_file(all_tensors, str(tmp / TENSORS_NAME))
        payload = dict(state, optimizer_param_groups=groups)
        (tmp / STATE_NAME).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    ckpt_dir: str | os.PathLike[str],
    networks: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Load weights and optimizer state into existing objects; return (state JSON, extra tensors)."""
    ckpt_dir = Path(ckpt_dir)
    state_path = ckpt_dir / STATE_NAME
    if not state_path.is_file():
        raise FileNotFoundError(f"{ckpt_dir}: no {STATE_NAME} (not a training checkpoint)")
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{state_path}: not valid JSON ({exc})") from exc
    for name, net in networks.items():
        weights = ckpt_dir / name / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: missing")
        net.load_state_dict(load_file(str(weights)), strict=True)
    tensors = load_file(str(ckpt_dir / TENSORS_NAME))
    groups = state.pop("optimizer_param_groups")
    for name, opt in optimizers.items():
        _restore_optimizer(name, opt, tensors, groups[name])
    extra = {k: v for k, v in tensors.items() if not k.startswith("opt.")}
    return state, extra
