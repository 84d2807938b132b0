"""Checkpoint layout, integrity and loading (weights are safetensors, never pickles).

A run folder ``runs/NNNNN-<desc>/`` holds ``checkpoints/ckpt-KKKKKKKK/`` (K = images seen, zero-padded so that
names sort by progress). A checkpoint directory holds one ``save_pretrained`` directory per network —
``G/``, ``G_ema/``, ``D/`` — plus the training state beside them. A checkpoint directory is written under a
temp name and renamed into place, so one that exists was complete when written; every weights file's sha256
is recorded beside it (``config.json``, ``training_state.json``) so damage since then is caught on load.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from medgan3d.fs import atomic_dir, atomic_write, file_sha256
from medgan3d.modeling import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    check_pretrained,
    load_weights,
    verify_weights,
)
from medgan3d.networks import Generator

CHECKPOINTS_DIR = "checkpoints"
CKPT_PREFIX = "ckpt-"
NETWORKS = ("G", "G_ema", "D")  # what a checkpoint that does not list its networks holds (StyleGAN2)
STATE_NAME = "training_state.json"
TENSORS_NAME = "training_state.safetensors"
STATE_SHA_KEY = "tensors_sha256"  # in training_state.json: the sha256 of training_state.safetensors
NETWORKS_KEY = "networks"  # in training_state.json: the network directories the checkpoint holds


class CheckpointError(ValueError):
    """A checkpoint that is incomplete, unreadable or altered since it was written; the message names the file."""


class CheckpointWarning(UserWarning):
    """A run folder's newest checkpoint(s) were skipped as not intact, or a generator other than G_ema is used."""


def is_network_dir(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """``ckpt-*`` directories of a run, oldest first (intact or not: see :func:`is_intact`)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(CKPT_PREFIX))


def _check_network(directory: Path) -> None:
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: missing network directory")
    try:
        check_pretrained(directory)
    except (OSError, ValueError) as exc:  # FileNotFoundError / WeightsError, already naming the file
        raise CheckpointError(str(exc)) from exc


def _read_state(ckpt: Path) -> dict[str, Any]:
    path = ckpt / STATE_NAME
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return state


def _listed_networks(ckpt: Path, state: dict[str, Any]) -> tuple[str, ...]:
    names = state.get(NETWORKS_KEY, NETWORKS)
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) and n.isidentifier() for n in names):
        raise CheckpointError(f"{ckpt / STATE_NAME}: {NETWORKS_KEY} must be a list of network names")
    return tuple(names)


def check_checkpoint(ckpt_dir: str | os.PathLike[str]) -> None:
    """Verify a checkpoint directory; raise :class:`CheckpointError` naming the first bad file and why.

    A training checkpoint (one with ``training_state.json``) must hold ``training_state.safetensors`` and
    every network directory its state lists (``G/``, ``G_ema/``, ``D/`` if it lists none: written before the
    list was recorded); any other (an inflated one) at least ``G/`` or ``G_ema/``. Every weights file is
    checked against its recorded sha256 (legacy files without one: their safetensors header against the file
    size).
    """
    ckpt = Path(ckpt_dir)
    if not ckpt.is_dir():
        raise CheckpointError(f"{ckpt}: not a directory")
    if not any(ckpt.iterdir()):
        raise CheckpointError(f"{ckpt}: empty folder (a write that never finished?)")
    training = (ckpt / STATE_NAME).exists()
    if training:
        state = _read_state(ckpt)
        tensors = ckpt / TENSORS_NAME
        if not tensors.is_file():
            raise CheckpointError(f"{tensors}: missing")
        try:
            verify_weights(tensors, state.get(STATE_SHA_KEY))
        except ValueError as exc:
            raise CheckpointError(str(exc)) from exc
    names = _listed_networks(ckpt, state) if training else tuple(n for n in NETWORKS if (ckpt / n).exists())
    if not {"G", "G_ema"} & set(names):
        raise CheckpointError(f"{ckpt}: holds no G/ or G_ema/ network directory")
    for name in names:
        _check_network(ckpt / name)


def is_intact(ckpt_dir: str | os.PathLike[str]) -> str | None:
    """``None`` if :func:`check_checkpoint` passes, else the reason (naming the bad file)."""
    try:
        check_checkpoint(ckpt_dir)
    except CheckpointError as exc:
        return str(exc)
    return None


def _is_checkpoint_path(path: Path) -> bool:
    if (path / CHECKPOINTS_DIR).is_dir():  # a run folder
        return False
    return path.name.startswith(CKPT_PREFIX) or any((path / n).exists() for n in (*NETWORKS, STATE_NAME))


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """The checkpoint to use for a run folder or a checkpoint directory; always an intact one.

    A checkpoint directory is verified and returned, or :class:`CheckpointError` raised. For a run folder
    the newest intact checkpoint is returned; if newer ones were skipped a :class:`CheckpointWarning` names
    each and why. ``FileNotFoundError`` if the path or the run's checkpoints are missing;
    :class:`CheckpointError` if none is intact.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run or checkpoint")
    if _is_checkpoint_path(path):
        check_checkpoint(path)
        return path
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise FileNotFoundError(
            f"{path}: not a checkpoint and holds no {CHECKPOINTS_DIR}/{CKPT_PREFIX}* directory"
        )
    skipped: list[str] = []
    for ckpt in reversed(checkpoints):
        reason = is_intact(ckpt)
        if reason is None:
            if skipped:
                warnings.warn(
                    f"{path}: skipped {len(skipped)} checkpoint(s) that are not intact: {'; '.join(skipped)}; "
                    f"using {ckpt.name}",
                    CheckpointWarning,
                    stacklevel=2,
                )
            return ckpt
        skipped.append(reason)
    raise CheckpointError(f"{path}: no intact checkpoint: {'; '.join(skipped)}")


def run_dir_of(path: str | os.PathLike[str]) -> Path:
    """The run folder of ``path`` (a run folder itself, or a checkpoint inside one); nothing is verified."""
    path = Path(path)
    return path if (path / CHECKPOINTS_DIR).is_dir() else path.parent.parent


def _generator_from(directory: Path, device: str) -> Generator:
    """A saved generator of any family (StyleGAN2 ``Generator``, ``HAGANGenerator``); other networks refused."""
    from medgan3d.modeling import from_pretrained, read_config

    name = str(read_config(directory).get("class"))
    if not name.endswith("Generator"):
        raise CheckpointError(f"{directory / CONFIG_NAME}: holds a {name}, not a generator")
    return from_pretrained(directory, device)


def load_generator(path: str | os.PathLike[str], ema: bool = True, device: str = "cpu") -> Generator:
    """A generator from a run folder, a checkpoint, or a saved Generator directory (verified).

    The checkpoint comes from :func:`resolve_checkpoint` (a run folder falls back to its newest intact
    checkpoint, with a warning). ``ema=True`` loads ``G_ema`` (what StyleGAN2 samples from): a training
    checkpoint that was saved with a G_ema and lost it is not intact, so G is never silently used instead.
    Without a G_ema ``G`` is used: quietly for a training checkpoint that lists no G_ema (a family without
    EMA), with a :class:`CheckpointWarning` for any other (an inflated one).
    """
    path = Path(path)
    if (path / CONFIG_NAME).exists() or (path / WEIGHTS_NAME).exists():
        return _generator_from(path, device)
    ckpt = resolve_checkpoint(path)
    name = "G_ema" if ema else "G"
    if not (ckpt / name).is_dir():
        if name == "G":
            raise CheckpointError(f"{ckpt}: holds no G/ network directory")
        if not (ckpt / STATE_NAME).is_file():
            warnings.warn(
                f"{ckpt}: holds no G_ema/ (not a training checkpoint); using G/",
                CheckpointWarning,
                stacklevel=2,
            )
        name = "G"
    return _generator_from(ckpt / name, device)


# --------------------------------------------------------------------------------------------------
# Full training state: save / restore
# --------------------------------------------------------------------------------------------------


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


def _restore_optimizer(
    name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list
) -> None:
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
    optimizers: Mapping[str, torch.optim.Optimizer],
    state: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    keep_last: int = 3,
    protect: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``checkpoints/ckpt-<nimg>/`` atomically (temp dir + rename), then prune old checkpoints.

    Pruning keeps the last ``keep_last`` (all if ``keep_last <= 0``), the one just written and ``protect``
    (a checkpoint of this run, e.g. the newest written with no bad streak), whatever their age. Modes follow
    the umask. ``training_state.json`` also records the network names and the sha256 of
    ``training_state.safetensors``.
    """
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(cur_nimg)
    with atomic_dir(final, replace=True, prefix=".tmp-") as tmp:
        for name, net in networks.items():
            net.save_pretrained(tmp / name)  # type: ignore[operator]  # every network is a PretrainedMixin
        all_tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        groups = {}
        for name, opt in optimizers.items():
            opt_tensors, groups[name] = _optimizer_tensors(name, opt)
            all_tensors |= opt_tensors
        # through atomic_write, which gives it the umask's mode: safetensors writes files 0600
        atomic_write(tmp / TENSORS_NAME, lambda p: save_file(all_tensors, str(p)))
        payload = state | {
            "optimizer_param_groups": groups,
            NETWORKS_KEY: sorted(networks),
            STATE_SHA_KEY: file_sha256(tmp / TENSORS_NAME),
        }
        (tmp / STATE_NAME).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    kept = {final.name} | ({Path(protect).name} if protect is not None else set())
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        if old.name not in kept:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    ckpt_dir: str | os.PathLike[str],
    networks: dict[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Load weights and optimizer state into existing objects; return (state JSON, extra tensors).

    The whole checkpoint is verified first (:func:`check_checkpoint`), so nothing is loaded from a damaged
    one; every failure is a :class:`CheckpointError` naming the file and the reason.
    """
    ckpt_dir = Path(ckpt_dir)
    check_checkpoint(ckpt_dir)
    if not (ckpt_dir / STATE_NAME).is_file():
        raise CheckpointError(f"{ckpt_dir}: no {STATE_NAME} (not a training checkpoint)")
    state = _read_state(ckpt_dir)
    for name in sorted(networks.keys() - set(_listed_networks(ckpt_dir, state))):
        _check_network(ckpt_dir / name)  # not verified above: a network the checkpoint does not list
    state.pop(STATE_SHA_KEY, None)
    state.pop(NETWORKS_KEY, None)
    for name, net in networks.items():
        weights = ckpt_dir / name / WEIGHTS_NAME
        try:
            net.load_state_dict(load_weights(weights), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{weights}: does not fit the {name} network being loaded ({exc})") from exc
        except ValueError as exc:  # WeightsError: changed since check_checkpoint read it
            raise CheckpointError(str(exc)) from exc
    try:
        tensors = load_weights(ckpt_dir / TENSORS_NAME)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    try:
        groups = state.pop("optimizer_param_groups")
        for name, opt in optimizers.items():
            _restore_optimizer(name, opt, tensors, groups[name])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt_dir / STATE_NAME}: optimizer state does not fit ({exc!r})") from exc
    extra = {k: v for k, v in tensors.items() if not k.startswith("opt.")}
    return state, extra
