"""2D → 3D weight inflation (Liu et al., arXiv 2208.03934 §3.2, Eq. 3–7, Tables 1–2, Fig. 4–5).

A 2D StyleGAN2 pretrained on axial slices initialises its 3D twin (same widths, mapping and variants; every
``k×k`` kernel becomes ``k×k×k`` with the depth axis FIRST, ``w[:, :, d, h, w]``). The paper defines the
kernel rule; what it leaves open is decided here and documented in ``docs/inflation.md``:

* **equalized lr** — the formulas hold for the weights the layer *runs with*: a D conv's stored kernel is scaled
  at run time by ``1/√fan_in`` and ``fan_in`` grows ``k``-fold in 3D, so copied 2D values are multiplied by
  ``√k`` (``equalized_lr="compensate"``, default; ``"stored"`` applies the formulas to the stored tensors).
  Modulated synthesis convs have no run-time gain (they are demodulated), toRGB's gain is the same in 2D/3D.
* **N(0, 0.1)** — drawn in stored units, i.e. ``init_std`` × a fresh init (stored weights are N(0, 1)).
* **learned constant, constant noise** — replicated along depth.
* **D's FC after the epilogue** — replicated along depth and divided by ``d``: a depth-constant feature map
  gives the 2D logit.
* **1ⁿ kernels** (toRGB, fromRGB, skips, the S&S-D 1×1 branch, depthwise-D pointwise) have a single depth tap:
  every strategy other than ``none`` copies them.
* everything else (mapping, affines, biases, noise strengths, ``w_avg``) has the same shape and is copied.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from medgan3d.fs import atomic_dir

if TYPE_CHECKING:
    from medgan3d.config import BaselineConfig, HAGANConfig, ModelConfig, Preset

    # a preset name or YAML path, a Preset, or a model config (refused unless a StyleGAN2 ModelConfig)
    Config3D = str | os.PathLike[str] | Preset | ModelConfig | HAGANConfig | BaselineConfig

STRATEGIES = ("none", "inflate-1", "inflate-2", "inflate-3", "inflate-asc", "inflate-nwi")
PARTS = ("G", "D", "GD")
EQUALIZED_LR_MODES = ("compensate", "stored")
DEFAULT_INIT_STD = 0.1
INFLATION_RECORD = "inflation.json"
_FC_KEY = "epilogue.fc.weight"
_EPILOGUE_CONV_BIAS = "epilogue.conv.bias"


class InflationError(ValueError):
    """The 2D source cannot be inflated into the 3D target (architecture mismatch, bad argument)."""


# --------------------------------------------------------------------------------------------------
# The kernel rule: Eq. 3–7 with the depth axis first
# --------------------------------------------------------------------------------------------------


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise InflationError(
            f"unknown inflation strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}"
        )
    return strategy


def nwi_alphas(depth: int) -> list[float]:
    """Eq. 7 weights with ``T = depth`` (T = 3 for the 3×3×3 kernels): centre ``(2T−1)/T``, others ``−1/T``.

    They sum to 1, so the depth-sum of the 3D kernel equals the 2D kernel; a 1-tap depth gives ``[1]`` (copy).
    """
    t, centre = depth, depth // 2
    return [(2 * t - 1) / t if i == centre else -1 / t for i in range(depth)]


def inflate_kernel(
    w2: Tensor,
    depth: int,
    strategy: str,
    *,
    init_std: float = DEFAULT_INIT_STD,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A 3D kernel ``[out, in, depth, *w2.shape[2:]]`` from a 2D kernel ``[out, in, k, k]`` (Eq. 3–7).

    The 3D kernel is first drawn from N(0, ``init_std``), then overwritten per the strategy with ``scale·w2``
    (``scale`` is the equalized-lr compensation). Planes are indexed from the centre ``c = depth // 2``:
    Inflate-1 sets ``c`` (Eq. 3), Inflate-2 ``c−1, c`` (Eq. 4: planes 0 and 1), Inflate-3 ``c−1, c, c+1``
    (Eq. 5), Inflate-ASC the centre planes along depth, then height, then width in this order (Eq. 6; where
    they cross, the last assignment wins), Inflate-NWI every plane ``α_i·w2`` (Eq. 7). ``none`` returns the
    random draw. Depth-1 kernels are copied by every strategy but ``none``.
    """
    check_strategy(strategy)
    if depth % 2 == 0:
        raise InflationError(f"kernel depth {depth} has no centre plane; inflation needs an odd kernel size")
    w2 = w2.detach().to(torch.float32) * scale
    shape = (*w2.shape[:2], depth, *w2.shape[2:])
    w3 = torch.randn(shape, generator=generator) * init_std
    c = depth // 2
    if strategy in ("inflate-1", "inflate-2", "inflate-3"):
        count = int(strategy[-1])
        for i in range(c - 1 if count > 1 else c, c + (2 if count == 3 else 1)):
            if 0 <= i < depth:
                w3[:, :, i] = w2
    elif strategy == "inflate-asc":
        _inflate_asc(w3, w2, c)
    elif strategy == "inflate-nwi":
        for i, alpha in enumerate(nwi_alphas(depth)):
            w3[:, :, i] = alpha * w2
    return w3


def _inflate_asc(w3: Tensor, w2: Tensor, c: int) -> None:
    """Eq. 6: the axial (fixed depth), coronal (fixed height) and sagittal (fixed width) centre planes."""
    if w2.ndim != 4 or len(set(w3.shape[2:])) != 1:
        raise InflationError(f"inflate-asc needs a cubic 3D kernel, got {list(w3.shape)}")
    w3[:, :, c, :, :] = w2
    w3[:, :, :, c, :] = w2
    w3[:, :, :, :, c] = w2


# --------------------------------------------------------------------------------------------------
# State dicts
# --------------------------------------------------------------------------------------------------


def network_kind(keys: Iterable[str]) -> str:
    """``"generator"`` or ``"discriminator"`` from the state-dict keys of a medgan3d StyleGAN2 network."""
    keys = list(keys)
    if any(k.startswith("synthesis.") for k in keys) and any(k.startswith("mapping.") for k in keys):
        return "generator"
    if any(k.startswith("epilogue.") for k in keys):
        return "discriminator"
    raise InflationError(
        "not the state dict of a medgan3d Generator or Discriminator (no synthesis./epilogue.)"
    )


def _check_keys(sd2d: Mapping[str, Tensor], sd3d: Mapping[str, Tensor]) -> None:
    missing, extra = sorted(set(sd3d) - set(sd2d)), sorted(set(sd2d) - set(sd3d))
    if missing or extra:
        raise InflationError(
            f"2D and 3D networks have different layers: only in 3D {missing[:8]}, only in 2D {extra[:8]}"
        )


def _mismatch(key: str, t2: Tensor, t3: Tensor, why: str) -> InflationError:
    return InflationError(f"{key}: 2D shape {list(t2.shape)} does not inflate to 3D {list(t3.shape)} ({why})")


def _is_kernel_pair(t2: Tensor, t3: Tensor) -> bool:
    return t2.ndim == 4 and t3.ndim == 5 and t3.shape[:2] == t2.shape[:2] and t3.shape[3:] == t2.shape[2:]


def _inflate_fc(key: str, w2: Tensor, w3: Tensor, channels: int, scale_mode: str) -> Tensor:
    """D's FC ``[out, C·h·w] → [out, C·d·h·w]`` (flatten order C, d, h, w): replicate over d, divide by d."""
    out, in2 = w2.shape
    if w3.shape[0] != out or w3.shape[1] % in2 or in2 % channels:
        raise _mismatch(key, w2, w3, "the FC input must grow by the base depth")
    d = w3.shape[1] // in2
    scale = math.sqrt(d) if scale_mode == "compensate" else 1.0  # run-time gain 1/√in_features
    w = w2.detach().float().reshape(out, channels, 1, in2 // channels) * (scale / d)
    return w.expand(out, channels, d, in2 // channels).reshape(out, -1).clone()


def _inflate_tensor(
    key: str,
    t2: Tensor,
    t3: Tensor,
    strategy: str,
    *,
    equalized: bool,
    init_std: float,
    generator: torch.Generator | None,
) -> Tensor:
    """One tensor of the 3D state dict from its 2D twin, by its role (see the module docstring)."""
    if t3.shape == t2.shape:
        return t2.detach().clone()
    if _is_kernel_pair(t2, t3):
        depth = t3.shape[2]
        scale = math.sqrt(depth) if equalized else 1.0  # fan_in ratio 3D/2D is the depth of the kernel
        return inflate_kernel(t2, depth, strategy, init_std=init_std, scale=scale, generator=generator)
    if key.endswith("noise_const") and t3.shape[1:] == t2.shape and t3.ndim == t2.ndim + 1:
        return t2.detach().unsqueeze(0).expand(t3.shape).clone()  # [H, W] → [D, H, W]
    if key.endswith(".const") and t3.ndim == t2.ndim + 1 and (t3.shape[0], *t3.shape[2:]) == t2.shape:
        return t2.detach().unsqueeze(1).expand(t3.shape).clone()  # [C, h, w] → [C, d, h, w]
    raise _mismatch(key, t2, t3, "no inflation rule for this pair")


def inflate_state_dict(
    sd2d: Mapping[str, Tensor],
    sd3d_template: Mapping[str, Tensor],
    strategy: str,
    *,
    init_std: float = DEFAULT_INIT_STD,
    equalized_lr: str = "compensate",
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The 3D state dict inflated from a 2D twin's state dict (Liu et al., arXiv 2208.03934 §3.2, Eq. 3–7).

    ``sd3d_template`` is the state dict of a freshly built 3D network (a medgan3d ``Generator`` or
    ``Discriminator``): it supplies the shapes, and for ``strategy="none"`` it is returned unchanged (copied).
    Raises :class:`InflationError` naming the first key whose shapes are not a 2D→3D twin pair.
    """
    check_strategy(strategy)
    if equalized_lr not in EQUALIZED_LR_MODES:
        raise InflationError(f"equalized_lr must be one of {EQUALIZED_LR_MODES}, got {equalized_lr!r}")
    if init_std < 0:
        raise InflationError(f"init_std must be >= 0, got {init_std}")
    _check_keys(sd2d, sd3d_template)
    kind = network_kind(sd3d_template)
    if strategy == "none":
        return {k: v.detach().clone() for k, v in sd3d_template.items()}
    equalized = kind == "discriminator" and equalized_lr == "compensate"
    out: dict[str, Tensor] = {}
    for key, t3 in sd3d_template.items():
        t2 = sd2d[key]
        if kind == "discriminator" and key == _FC_KEY and t3.shape != t2.shape:
            channels = sd3d_template[_EPILOGUE_CONV_BIAS].shape[0]
            new = _inflate_fc(key, t2, t3, channels, equalized_lr)
        else:
            new = _inflate_tensor(
                key, t2, t3, strategy, equalized=equalized, init_std=init_std, generator=generator
            )
        out[key] = new.to(dtype=t3.dtype, device=t3.device)
    return out


# --------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------


# Constructor arguments added after networks were first saved, with the value the older saves were built with.
LATER_ARGS = {"architecture": "skip"}


def twin_differences(config_2d: Mapping[str, Any], config_3d: Mapping[str, Any]) -> list[str]:
    """What keeps two ``save_pretrained`` configs (``{"class", "args"}``) from being a 2D→3D twin pair."""
    diffs: list[str] = []
    if config_2d.get("class") != config_3d.get("class"):
        diffs.append(f"class: 2D {config_2d.get('class')} vs 3D {config_3d.get('class')}")
    a2, a3 = dict(config_2d.get("args", {})), dict(config_3d.get("args", {}))
    if a2.get("spatial_dims") != 2:
        diffs.append(f"spatial_dims of the source is {a2.get('spatial_dims')}, not 2")
    if a3.get("spatial_dims") != 3:
        diffs.append(f"spatial_dims of the target is {a3.get('spatial_dims')}, not 3")
    b2, b3 = list(a2.get("base_shape") or []), list(a3.get("base_shape") or [])
    if b3[1:] != b2:
        diffs.append(f"base_shape: 2D {b2} is not 3D {b3} without its depth axis")
    for name in sorted((set(a2) | set(a3)) - {"spatial_dims", "base_shape"}):
        if a2.get(name, LATER_ARGS.get(name)) != a3.get(name, LATER_ARGS.get(name)):
            diffs.append(f"{name}: 2D {a2.get(name)!r} vs 3D {a3.get(name)!r}")
    return diffs


def check_twins(net2d: nn.Module, net3d: nn.Module, what: str = "networks") -> None:
    """Raise :class:`InflationError` listing every difference if ``net3d`` is not ``net2d``'s 3D twin."""
    c2, c3 = getattr(net2d, "config", None), getattr(net3d, "config", None)
    if c2 is None or c3 is None:
        raise InflationError(f"{what}: both networks must be medgan3d networks (with a recorded config)")
    diffs = twin_differences(c2, c3)
    if diffs:
        raise InflationError(f"{what} are not a 2D→3D twin pair: " + "; ".join(diffs))


@torch.no_grad()
def inflate_network(
    net2d: nn.Module,
    net3d: nn.Module,
    strategy: str,
    *,
    init_std: float = DEFAULT_INIT_STD,
    equalized_lr: str = "compensate",
    generator: torch.Generator | None = None,
) -> None:
    """Inflate ``net2d`` into the freshly built ``net3d`` in place (``none`` leaves ``net3d`` untouched)."""
    check_strategy(strategy)
    check_twins(net2d, net3d)
    if strategy == "none":
        return
    sd = inflate_state_dict(
        net2d.state_dict(),
        net3d.state_dict(),
        strategy,
        init_std=init_std,
        equalized_lr=equalized_lr,
        generator=generator,
    )
    net3d.load_state_dict(sd, strict=True)


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


def _model_config_3d(config_3d: Config3D) -> ModelConfig:
    from medgan3d.config import ModelConfig, Preset, load_preset

    config: object = config_3d
    if isinstance(config, str | os.PathLike):
        config = load_preset(os.fspath(config))
    if isinstance(config, Preset):
        config = config.model
    if not isinstance(config, ModelConfig):
        raise InflationError(f"expected a preset name, YAML path, Preset or ModelConfig, got {type(config)}")
    if config.spatial_dims != 3:
        raise InflationError(f"the target config must be 3D, got spatial_dims={config.spatial_dims}")
    return config


def _load_2d(ckpt: Path, name: str) -> nn.Module:
    from medgan3d.modeling import from_pretrained, read_config

    args = read_config(ckpt / name).get("args", {})
    if args.get("spatial_dims") != 2:
        raise InflationError(
            f"{ckpt / name}/config.json: spatial_dims is {args.get('spatial_dims')}; inflation needs a 2D network"
        )
    return from_pretrained(ckpt / name)


def _source_name(ckpt: Path, name: str) -> str:
    """The 2D network to inflate ``name`` from: G_ema falls back to G when the checkpoint has no G_ema."""
    from medgan3d.training.checkpoint import is_network_dir

    source = "G" if name == "G_ema" and not is_network_dir(ckpt / name) else name
    if not is_network_dir(ckpt / source):
        raise FileNotFoundError(f"{ckpt / source}: missing network directory (needed to inflate {name})")
    return source


def _fresh_3d(config: Any, seed: int) -> dict[str, nn.Module]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = config.build_generator()
        d = config.build_discriminator()
    return {"G": g, "G_ema": copy.deepcopy(g), "D": d}


def inflate_checkpoint(
    ckpt_2d: str | os.PathLike[str],
    config_3d: Config3D,
    strategy: str,
    parts: str = "GD",
    out_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    init_std: float = DEFAULT_INIT_STD,
    equalized_lr: str = "compensate",
) -> dict[str, nn.Module]:
    """3D networks ``{"G", "G_ema", "D"}`` inflated from a 2D checkpoint (Liu et al., arXiv 2208.03934 §3.2, Table 2).

    ``ckpt_2d``: a checkpoint directory (``G/``, ``G_ema/``, ``D/``) or a run folder (its latest checkpoint)
    whose networks are 2D. ``config_3d``: a preset name / YAML path / ``Preset`` / ``ModelConfig`` of the
    3D model, which must be the 3D twin of the 2D networks. ``parts``: ``G`` inflates G and G_ema, ``D`` the
    discriminator, ``GD`` both; parts not inflated (and everything for ``none``) are fresh 3D inits drawn with
    ``seed`` (G_ema a copy of G). If ``out_dir`` is given, the networks are written there as a checkpoint
    directory (atomically; it must not exist yet) with an ``inflation.json`` record.
    """
    from medgan3d.training.checkpoint import resolve_checkpoint

    check_strategy(strategy)
    if parts not in PARTS:
        raise InflationError(f"parts must be one of {', '.join(PARTS)}, got {parts!r}")
    if out_dir is not None and Path(out_dir).exists():
        raise FileExistsError(f"{out_dir}: already exists; choose a new output directory")
    config = _model_config_3d(config_3d)
    ckpt = resolve_checkpoint(ckpt_2d)
    nets = _fresh_3d(config, seed)
    todo = [] if strategy == "none" else [n for n in ("G", "G_ema", "D") if n[0] in parts]
    for name in todo:
        with torch.random.fork_rng(devices=[]):  # building the 2D net draws an init we overwrite
            net2d = _load_2d(ckpt, _source_name(ckpt, name))
        try:
            check_twins(net2d, nets[name], what=f"{ckpt / _source_name(ckpt, name)} and the 3D {name}")
        except InflationError as exc:
            raise InflationError(f"{exc} (3D config: {config_3d})") from None
        gen = torch.Generator().manual_seed(seed + (2 if name == "D" else 1))  # G and G_ema share draws
        inflate_network(
            net2d, nets[name], strategy, init_std=init_std, equalized_lr=equalized_lr, generator=gen
        )
    if out_dir is not None:
        named = (
            getattr(config_3d, "name", None) if not isinstance(config_3d, str | os.PathLike) else config_3d
        )
        record = dict(
            source=str(ckpt),
            config=str(named) if named else None,
            model=dataclasses.asdict(config),
            strategy=strategy,
            parts=parts,
            seed=seed,
            init_std=init_std,
            equalized_lr=equalized_lr,
        )
        save_inflated(nets, out_dir, record)
    return nets


def save_inflated(
    nets: Mapping[str, nn.Module], out_dir: str | os.PathLike[str], record: dict[str, Any]
) -> Path:
    """Write ``G/``, ``G_ema/``, ``D/`` and ``inflation.json`` to a temp dir, then rename it to ``out_dir``."""
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(f"{out}: already exists; choose a new output directory")
    with atomic_dir(out) as tmp:
        for name, net in nets.items():
            net.save_pretrained(tmp / name)  # type: ignore[operator]  # every network is a PretrainedMixin
        (tmp / INFLATION_RECORD).write_text(
            json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    return out
