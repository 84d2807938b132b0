"""``save_pretrained`` / ``from_pretrained`` for every network: ``model.safetensors`` + ``config.json``.

The config is captured from the constructor arguments when a network is built, so a saved directory holds
everything needed to rebuild it. Nothing is ever unpickled: weights are safetensors, the config is JSON and
the class is looked up in a registry of medgan3d networks (never imported by name from the file).
``config.json`` also records the weights' sha256 (written after the weights), checked on load; directories
saved before the hash was recorded still load, with the safetensors header checked against the file size.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from medgan3d.fs import atomic_write, file_sha256

if TYPE_CHECKING:
    from typing_extensions import Self

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SHA256_KEY = "sha256"

T = TypeVar("T", bound="PretrainedMixin")
_REGISTRY: dict[str, type[PretrainedMixin]] = {}


class WeightsError(ValueError):
    """A saved network whose files are unreadable or differ from what was saved; the message names the file."""


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

        cls.__init__ = recording_init  # type: ignore[method-assign]  # wraps every subclass's constructor on purpose

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``model.safetensors``, then ``config.json`` with the weights' sha256 (each temp file + rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}  # type: ignore[attr-defined]  # mixed into nn.Module
        atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
        record = self.config | {SHA256_KEY: file_sha256(directory / WEIGHTS_NAME)}
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        atomic_write(directory / CONFIG_NAME, lambda p: p.write_text(text, encoding="utf-8"))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> Self:
        """Rebuild a network saved by :meth:`save_pretrained` and load its weights (strictly).

        Raises ``FileNotFoundError`` for a missing file and :class:`WeightsError` (a ``ValueError``) for a
        config, class, hash or tensor set that does not check out, each naming the file.
        """
        config = read_config(directory)
        name = config.get("class")
        target = _REGISTRY.get(str(name))
        if target is None:  # a class whose module was not imported yet: the registry fills on import
            import medgan3d.networks  # noqa: F401

            target = _REGISTRY.get(str(name))
        if target is None:
            raise WeightsError(f"{Path(directory) / CONFIG_NAME}: unknown network class {name!r}")
        if cls is not PretrainedMixin and not issubclass(target, cls):
            raise WeightsError(f"{Path(directory) / CONFIG_NAME}: holds a {name}, not a {cls.__name__}")
        model = target(**config["args"])
        weights = Path(directory) / WEIGHTS_NAME
        verify_weights(weights, _recorded_sha(directory, config))
        state = load_weights(weights, device)
        try:
            model.load_state_dict(state, strict=True)  # type: ignore[attr-defined]  # mixed into nn.Module
        except RuntimeError as exc:
            raise WeightsError(
                f"{weights}: does not fit the {name} described by {CONFIG_NAME} ({exc})"
            ) from exc
        return model.to(device)  # type: ignore[attr-defined]  # PretrainedMixin classes are nn.Modules


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of a saved network, with a clear error naming the file."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing config file (is {directory} a saved medgan3d network?)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or "args" not in config:
        raise WeightsError(f"{path}: expected an object with 'class' and 'args'")
    return config


def verify_weights(path: str | os.PathLike[str], sha256: str | None) -> None:
    """Check a safetensors file against its recorded sha256 (``None``: a legacy file; check its header).

    Raises ``FileNotFoundError`` if it is missing and :class:`WeightsError` naming it and the reason
    (truncated, altered, not safetensors) otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing weights file")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256:
            raise WeightsError(
                f"{path}: sha256 {actual[:12]}… differs from the recorded {sha256[:12]}… "
                f"(the file is truncated or altered; {path.stat().st_size} bytes)"
            )
        return
    try:  # the header lists every tensor's byte range; safetensors refuses a file that does not cover it
        with safe_open(str(path), framework="pt"):
            pass
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc


def load_weights(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` with its errors turned into a :class:`WeightsError` naming the file."""
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc


def check_pretrained(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Verify a ``save_pretrained`` directory without building the network; return its config.

    Errors as :func:`read_config` and :func:`verify_weights`.
    """
    config = read_config(directory)
    verify_weights(Path(directory) / WEIGHTS_NAME, _recorded_sha(directory, config))
    return config


def _recorded_sha(directory: str | os.PathLike[str], config: dict[str, Any]) -> str | None:
    sha = config.get(SHA256_KEY)
    if sha is not None and not isinstance(sha, str):
        raise WeightsError(f"{Path(directory) / CONFIG_NAME}: {SHA256_KEY} must be a hex string")
    return sha


def from_pretrained(directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> Any:
    """Load any medgan3d network saved with ``save_pretrained``."""
    return PretrainedMixin.from_pretrained(directory, device)
