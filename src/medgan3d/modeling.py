"""``save_pretrained`` / ``from_pretrained`` for every network: ``model.safetensors`` + ``config.json``.

The config is captured from the constructor arguments when a network is built, so a saved directory holds
everything needed to rebuild it. Nothing is ever unpickled: weights are safetensors, the config is JSON and
the class is looked up in a registry of medgan3d networks (never imported by name from the file).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

T = TypeVar("T", bound="PretrainedMixin")
_REGISTRY: dict[str, type[PretrainedMixin]] = {}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"constructor argument {value!r} is not JSON-serialisable")


class PretrainedMixin:
    """Records the constructor arguments of the outermost class as ``self.config``; adds save/load."""

    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.__name__] = cls
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **kw: Any) -> None:
            if "config" not in self.__dict__:  # the subclass that was called, not its parents
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                args_ = {k: _jsonable(v) for k, v in list(bound.arguments.items())[1:]}
                object.__setattr__(self, "config", {"class": type(self).__name__, "args": args_})
            init(self, *args, **kw)

        cls.__init__ = recording_init  # type: ignore[misc]

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``directory`` (each via a temp file + rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]
        atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
        text = json.dumps(self.config, indent=2, sort_keys=True) + "\n"
        atomic_write(directory / CONFIG_NAME, lambda p: p.write_text(text, encoding="utf-8"))
        return directory

    @classmethod
    def from_pretrained(
        cls: type[T], directory: str | os.PathLike[str], device: str | torch.device = "cpu"
    ) -> T:
        """Rebuild a network saved by :meth:`save_pretrained` and load its weights (strictly)."""
        config = read_config(directory)
        name = config.get("class")
        target = _REGISTRY.get(str(name))
        if target is None:
            raise ValueError(f"{Path(directory) / CONFIG_NAME}: unknown network class {name!r}")
        if cls is not PretrainedMixin and not issubclass(target, cls):
            raise ValueError(f"{Path(directory) / CONFIG_NAME}: holds a {name}, not a {cls.__name__}")
        model = target(**config["args"])
        weights = Path(directory) / WEIGHTS_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: missing weights file")
        try:
            state = load_file(str(weights), device=str(device))
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{weights}: not a readable safetensors file ({exc})") from exc
        model.load_state_dict(state, strict=True)  # type: ignore[attr-defined]
        return model.to(device)  # type: ignore[attr-defined,no-any-return]


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a saved network, with a clear error naming the file."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing config file (is {directory} a saved medgan3d network?)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or "args" not in config:
        raise ValueError(f"{path}: expected an object with 'class' and 'args'")
    return config


def from_pretrained(directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> Any:
    """Load any medgan3d network saved with ``save_pretrained``."""
    return PretrainedMixin.from_pretrained(directory, device)


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def honour_umask(path: str | os.PathLike[str]) -> None:
    """Give a ``mkstemp``/``mkdtemp`` path (always 0600/0700) the mode a plain ``open``/``mkdir`` would get.

    Checkpoints, samples, reports and datasets are shared within a lab group; the temp-then-rename writers
    must not make them private to their owner.
    """
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~current_umask())


def umask_temp_dir(parent: str | os.PathLike[str], prefix: str) -> Path:
    """``tempfile.mkdtemp`` in ``parent`` whose mode follows the umask (see :func:`honour_umask`)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    honour_umask(tmp)
    return tmp


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` on a temp file beside ``path``, then rename it over ``path``.

    The temp name ends with the same suffixes (``.nii.gz``) so writers that infer the format still work.
    """
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix="".join(path.suffixes) or ".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        honour_umask(tmp)
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
