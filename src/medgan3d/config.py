"""The whole configuration as typed dataclasses ⇄ YAML: a preset in ``configs/*.yaml`` and a run's config.yaml.

A YAML file has these sections (docs/configuration.md lists every key with its default and meaning):

* the header: ``name``, ``description``, ``reference``, ``paper_params_m``, ``data_preset``, ``pretrain_kimg`` (:class:`Preset`);
* ``model``: the architecture of one model family, named by ``family`` (default ``stylegan2``):
  :class:`ModelConfig` (StyleGAN2 and Split&Shuffle), :class:`HAGANConfig`, and the baselines
  :class:`WGANGPConfig`, :class:`VAEGANConfig`, :class:`AlphaGANConfig`, :class:`AlphaWGANGPConfig`;
* ``train``: :class:`TrainConfig`, the loop's settings, with ``train.loss`` the family's objective settings
  (:class:`LossConfig` for StyleGAN2, :class:`HAGANLoss`, :class:`WGANGPLoss`, ...);
* the evaluation settings, :class:`MetricsConfig`: what ``medgan3d evaluate``'s options set and a result's
  ``provenance.settings`` records (a run's snapshots score ``train.metrics`` with its defaults).

A run's config.yaml holds ``model`` and ``train`` as written by :func:`to_dict` plus the run's provenance
(``preset``, ``data``, ``world_size``, ``init``). Every section is read by the one :func:`from_dict`, which
refuses unknown keys and values of the wrong type with one line naming the file, the section and the key.

A preset names an architecture from the papers (Liu et al., "3D Split&Shuffle-GAN", arXiv 2208.03934 §4.2.2,
§4.3.3, Tables 3, 5, 7; Sun et al., HA-GAN, IEEE JBHI 2022; Hong et al., 3D-StyleGAN, DGM4MICCAI 2021). Each
3D StyleGAN2 preset has a 2D twin (:meth:`ModelConfig.twin_2d`) with the same widths and variants, for
pretraining on slices.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar, Union

import yaml

from medgan3d.data.dataset import SLICE_SOURCES
from medgan3d.errors import MedganError, UsageError
from medgan3d.networks.baselines import (
    BaselineCodeDiscriminator,
    BaselineDiscriminator,
    BaselineEncoder,
    BaselineGenerator,
    BaselineVAEEncoder,
)
from medgan3d.networks.hagan import HAGANDiscriminator, HAGANEncoder, HAGANGenerator, HAGANLatentEncoder
from medgan3d.networks.layers import D_VARIANTS, G_VARIANTS
from medgan3d.networks.stylegan import Discriminator, Generator

T = TypeVar("T")
DEFAULT_FAMILY = "stylegan2"  # the family of a model section without a ``family`` key


class ConfigError(MedganError, ValueError):
    """A configuration file or mapping that cannot be read; the message names the file, section and key."""


# ------------------------------------------------------------------------------------------------ generic


def doc(default: Any, meaning: str, omit_default: bool = False) -> Any:
    """A dataclass field with its default and a one-line meaning (docs/configuration.md is made from it);
    ``omit_default``: :func:`to_dict` leaves the key out while it holds its default (an optional section that
    older files never had)."""
    if isinstance(default, list | dict | set):
        raise TypeError("a mutable default needs default_factory")
    return field(default=default, metadata={"doc": meaning, "omit_default": omit_default})


def from_dict(cls: type[T], data: Any, source: str = "<dict>", section: str = "") -> T:
    """``cls`` built from a parsed YAML/JSON mapping: unknown keys and values of the wrong type are refused
    with one line ``SOURCE: unknown SECTION key 'KEY' (known: ...)``; lists become tuples where the field is
    a tuple; a nested dataclass field is read from a nested mapping; the class's own checks run last."""
    section = section or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the {section} section must be a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]  # cls is a dataclass
    for key in data:
        if key not in names:
            raise ConfigError(f"{source}: unknown {section} key {key!r} (known: {', '.join(names)})")
    hints = _hints(cls)  # type: ignore[arg-type]  # classes are hashable; typeshed's type[T] does not say so
    values = {key: _read(value, hints[key], source, section, key) for key, value in data.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        raise ConfigError(
            message if message.startswith(source) else f"{source}: {section}: {message}"
        ) from exc


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain YAML/JSON types of a config dataclass, in field order: tuples as lists, nested dataclasses as
    mappings; :func:`from_dict` reads it back to an equal object."""
    return {
        f.name: _plain(getattr(obj, f.name))
        for f in dataclasses.fields(obj)
        if not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _options(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union hint (``int | None`` → int, NoneType), or the hint alone."""
    origin = typing.get_origin(hint)
    return typing.get_args(hint) if origin in (Union, types.UnionType) else (hint,)


_KINDS: dict[Any, tuple[str, Any]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    str: ("a string", lambda v: isinstance(v, str)),
    type(None): ("null", lambda v: v is None),
}


def _read(value: Any, hint: Any, source: str, section: str, key: str) -> Any:
    """``value`` checked against the field's type hint; lists become tuples, mappings nested dataclasses."""
    options = _options(hint)
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
            return from_dict(option, value, source, f"{section}.{key}")  # type: ignore[arg-type]  # a dataclass type (checked)
    if isinstance(value, list) and any(typing.get_origin(o) is tuple for o in options):
        value = tuple(value)
    described = []
    for option in options:
        if option is Any or _matches(value, option):
            return value
        described.append(_describe(option))
    hint_text = (
        " (YAML reads 1e-4 as text: write 1.0e-4)" if isinstance(value, str) and _is_number(value) else ""
    )
    raise ConfigError(
        f"{source}: {section} key {key!r} must be {' or '.join(described)}, got {value!r}{hint_text}"
    )


def _matches(value: Any, option: Any) -> bool:
    if option in _KINDS:
        return bool(_KINDS[option][1](value))
    if typing.get_origin(option) is tuple:
        args = typing.get_args(option)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if dataclasses.is_dataclass(option):
        return isinstance(value, option)  # type: ignore[arg-type]  # a dataclass type (checked)
    return True  # a type this reader does not check (paths, built objects): the class checks it


def _describe(option: Any) -> str:
    if option in _KINDS:
        return str(_KINDS[option][0])
    if typing.get_origin(option) is tuple:
        args = typing.get_args(option)
        item = _describe(args[0]).removeprefix("an ").removeprefix("a ")
        count = "" if len(args) == 2 and args[1] is Ellipsis else f"{len(args)} "
        return f"a list of {count}{item}s"
    return f"a {getattr(option, 'section', getattr(option, '__name__', str(option)))} mapping"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------------- objectives (train.loss)

# HA-GAN
SELECTIONS = ("random", "deterministic")
DOWNSAMPLES = ("nearest", "area")
# baselines
REFERENCE_BETAS = (0.9, 0.999)  # Adam's defaults, used by every reference notebook (spec Q4)
GP_NORMS = ("sample", "voxel")
ADVERSARIAL = ("minimax", "non_saturating")
CRITIC_BATCHES = ("same", "next")
MAX_G_STEPS = 6  # phase indices seed the micro-batches and stop at 7


@dataclass(frozen=True)
class LossConfig:
    """StyleGAN2 objective (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020,
    §2–4, App. B); defaults follow Liu et al., arXiv 2208.03934 §4.2.3 (γ = 0.0512) and StyleGAN2 for the rest."""

    r1_gamma: float = doc(0.0512, "R1 weight γ on the reals (D's gradient penalty)")
    r1_interval: int = doc(16, "lazy R1: D steps between R1 steps")
    pl_weight: float = doc(2.0, "path-length regulariser weight")
    pl_interval: int = doc(4, "lazy path length: G steps between path-length steps")
    pl_decay: float = doc(0.01, "decay of the running mean path length")
    pl_batch_shrink: int = doc(2, "path length on batch / pl_batch_shrink samples")
    style_mixing: float = doc(0.9, "probability of style mixing per micro-batch")


@dataclass(frozen=True)
class HAGANLoss:
    """HA-GAN objective settings (Sun et al., IEEE JBHI 2022, §III-C): the published defaults and the
    ablations of its Table "Ablation"."""

    lr_g: float = doc(
        1e-4, "Adam learning rate of G (train.lr, when given, sets it; D and E keep their ratio)"
    )
    lr_d: float = doc(4e-4, "Adam learning rate of D")
    lr_e: float = doc(1e-4, "Adam learning rate of E^H and E^G")
    betas: tuple[float, float] = doc((0.0, 0.999), "Adam betas of every network")
    low_res: bool = doc(True, "false: 'HA-GAN w/o low-resolution branch' (no G^L, no D^L)")
    encoder: bool = doc(True, "false: 'HA-GAN w/o encoder' (E^H and E^G are not trained)")
    selection: str = doc(
        "random", "sub-volume choice: random | deterministic (cycle over 8 fixed sub-volumes)"
    )
    aligned: bool = doc(True, "false: the reference's misaligned crop (real start r, latent start r // 4)")
    downsample: str = doc(
        "nearest", "real low-res volume: nearest (x[..., ::4, ::4, ::4], the reference) | area"
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection {self.selection!r} not in {SELECTIONS}")
        if self.downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample {self.downsample!r} not in {DOWNSAMPLES}")
        if min(self.lr_g, self.lr_d, self.lr_e) <= 0:
            raise ValueError("HA-GAN learning rates must be positive")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _check_common(lr: float, betas: tuple[float, float]) -> tuple[float, float]:
    betas = (float(betas[0]), float(betas[1]))
    _require(lr > 0, f"lr must be positive, got {lr}")
    _require(all(0 <= b < 1 for b in betas), f"betas must be in [0, 1), got {list(betas)}")
    return betas


@dataclass(frozen=True)
class WGANGPLoss:
    """3D-WGAN-GP (``WGAN_ADNI_train.ipynb``; Gulrajani et al., "Improved Training of Wasserstein GANs",
    NeurIPS 2017, Algorithm 1, Eq. 3): Adam 2e-4 for G and critic, λ = 10.

    ``gp_norm``: ``sample`` = ‖∇‖₂ over each sample's whole gradient (Gulrajani et al., Eq. 3); ``voxel`` =
    the reference's norm over the channel axis only, i.e. every voxel's |∂D/∂x_v| pushed to 1 (Q1).
    ``n_critic`` critic steps per generator turn and ``g_steps`` generator steps per turn: 5 and 1 as
    Gulrajani et al.; the reference runs 1 and 5 (Q2).
    """

    lr: float = doc(2e-4, "Adam learning rate of G and the critic")
    betas: tuple[float, float] = doc(REFERENCE_BETAS, "Adam betas")
    gp_weight: float = doc(10.0, "gradient-penalty weight λ")
    gp_norm: str = doc("sample", "penalty norm: sample (whole gradient) | voxel (the reference's)")
    n_critic: int = doc(5, "critic steps per generator turn")
    g_steps: int = doc(1, f"generator steps per turn (at most {MAX_G_STEPS})")

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", _check_common(self.lr, self.betas))
        _require(self.gp_norm in GP_NORMS, f"gp_norm {self.gp_norm!r} not in {GP_NORMS}")
        _require(self.gp_weight >= 0, "gp_weight must be >= 0")
        _require(self.n_critic >= 1, f"n_critic must be >= 1, got {self.n_critic}")
        _require(
            1 <= self.g_steps <= MAX_G_STEPS, f"g_steps must be in [1, {MAX_G_STEPS}], got {self.g_steps}"
        )


@dataclass(frozen=True)
class VAEGANLoss:
    """3D-VAE-GAN (``VAEGAN_ADNI_train.ipynb``): Adam 1e-4 for D, G, E; γ = 20, β = 10, KL weight 1.

    L_D = BCE(D(x),1) + BCE(D(x_rec),0) + BCE(D(x_rand),0); L_G = γ·MSE(x_rec, x) + adversarial;
    L_E = kl_weight·KL + β·MSE(x_rec, x), KL averaged over the B·L code entries. ``adversarial``: ``minimax``
    = −L_D (the reference: saturating, and its D(x) term carries no gradient to G; Q13) or ``non_saturating``
    = BCE(D(x_rec),1) + BCE(D(x_rand),1). ``shared_noise``: D and GE phases use the same (z_p, ε) per
    micro-batch (the reference's single draw); False draws each phase's own. ``stable_bce``: BCE from logits;
    False applies the sigmoid first and clamps the log at −100 as ``nn.BCELoss`` (the reference).
    """

    lr: float = doc(1e-4, "Adam learning rate of D, G and E")
    betas: tuple[float, float] = doc(REFERENCE_BETAS, "Adam betas")
    gamma: float = doc(20.0, "weight γ of G's reconstruction MSE")
    beta: float = doc(10.0, "weight β of E's reconstruction MSE")
    kl_weight: float = doc(1.0, "weight of E's KL term")
    adversarial: str = doc("minimax", "G's adversarial loss: minimax (the reference) | non_saturating")
    shared_noise: bool = doc(True, "D and GE phases share (z_p, ε) per micro-batch (the reference)")
    stable_bce: bool = doc(True, "BCE from logits; false: sigmoid then clamped log (the reference)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", _check_common(self.lr, self.betas))
        _require(self.adversarial in ADVERSARIAL, f"adversarial {self.adversarial!r} not in {ADVERSARIAL}")
        _require(min(self.gamma, self.beta, self.kl_weight) >= 0, "gamma, beta and kl_weight must be >= 0")


@dataclass(frozen=True)
class AlphaGANLoss:
    """3D-α-GAN (``Alpha_GAN_ADNI_train.ipynb``; Rosca et al., arXiv 1706.04987, §3, Algorithm 1): Adam 2e-4
    for E, G, D, CD.

    L_EG = rec_weight·L1(x_rec, x) + code_weight·BCE(CD(z_e),1) + BCE(D(x_rec),1) + BCE(D(x_rand),1);
    L_D = real_weight·BCE(D(x),1) + BCE(D(x_rec),0) + BCE(D(x_rand),0);
    L_CD = BCE(CD(z_e),0) + BCE(CD(z_p),1).
    ``g_double_step``: a second Adam step of G on the same gradient (the reference's double
    ``g_optimizer.step()``, Q5). ``critic_batch``: ``same`` real batch for all three phases (the reference)
    or the ``next`` one for D and CD. ``stable_bce`` as :class:`VAEGANLoss`.
    """

    lr: float = doc(2e-4, "Adam learning rate of E, G, D and CD")
    betas: tuple[float, float] = doc(REFERENCE_BETAS, "Adam betas")
    rec_weight: float = doc(10.0, "weight of the L1 reconstruction")
    real_weight: float = doc(2.0, "weight of D's real term")
    code_weight: float = doc(1.0, "weight of the code critic's term in L_EG")
    g_double_step: bool = doc(False, "a second Adam step of G on the same gradient (the reference)")
    critic_batch: str = doc("same", "real batch of D and CD: same (the reference) | next")
    stable_bce: bool = doc(True, "BCE from logits; false: sigmoid then clamped log (the reference)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", _check_common(self.lr, self.betas))
        _require(
            self.critic_batch in CRITIC_BATCHES, f"critic_batch {self.critic_batch!r} not in {CRITIC_BATCHES}"
        )
        _require(min(self.rec_weight, self.real_weight, self.code_weight) >= 0, "loss weights must be >= 0")


@dataclass(frozen=True)
class AlphaWGANGPLoss:
    """3D-α-WGAN-GP (``Alpha_WGAN_ADNI_train.ipynb``; Kwon et al., MICCAI 2019, §2, Eq. 1–4): Adam 2e-4 for
    E, G, D, CD.

    L_EG = rec_weight·L1(x_rec, x) − code_weight·mean CD(z_e) − mean D(x_rec) − mean D(x_rand) (code_weight 0:
    the unmerged PR #10, Q9); L_D = −real_weight·mean D(x) + mean D(x_rec) + mean D(x_rand) + GP(x, x_rand) +
    GP(x, x_rec), each penalty weighted ``gp_weight`` (Q6); L_CD = mean CD(z_e) − mean CD(z_p) + GP(z_e, z_p)
    with z_e = E(x) encoded in the CD phase. ``cd_sees_encoded=False`` drops the mean CD(z_e) term, which is
    what the reference's CD effectively optimises (its z_e term has no gradient to CD, Q8). Penalties use the
    per-sample norm √Σ(g² + 1e−15) of the reference's helper. ``g_double_step`` as :class:`AlphaGANLoss`;
    ``critic_batch``: the reference draws the ``next`` real batch for D (and CD encodes that batch).
    """

    lr: float = doc(2e-4, "Adam learning rate of E, G, D and CD")
    betas: tuple[float, float] = doc(REFERENCE_BETAS, "Adam betas")
    rec_weight: float = doc(10.0, "weight of the L1 reconstruction")
    real_weight: float = doc(2.0, "weight of D's real term")
    code_weight: float = doc(1.0, "weight of the code critic's term in L_EG (0: the unmerged PR #10)")
    gp_weight: float = doc(10.0, "weight of each of D's two gradient penalties")
    code_gp_weight: float = doc(10.0, "weight of CD's gradient penalty")
    cd_sees_encoded: bool = doc(
        True, "CD's loss keeps its mean CD(z_e) term (false: what the reference optimises)"
    )
    g_double_step: bool = doc(False, "a second Adam step of G on the same gradient (the reference)")
    critic_batch: str = doc("next", "real batch of D and CD: same | next (the reference)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", _check_common(self.lr, self.betas))
        _require(
            self.critic_batch in CRITIC_BATCHES, f"critic_batch {self.critic_batch!r} not in {CRITIC_BATCHES}"
        )
        weights = (self.rec_weight, self.real_weight, self.code_weight, self.gp_weight, self.code_gp_weight)
        _require(min(weights) >= 0, "loss weights must be >= 0")


LossSettings = LossConfig | HAGANLoss | WGANGPLoss | VAEGANLoss | AlphaGANLoss | AlphaWGANGPLoss


# ------------------------------------------------------------------------------------------------ metrics

METRICS = ("fid", "fid_3d", "kid", "mmd", "ms_ssim", "psnr", "memorisation", "is")
DEFAULT_METRICS = ("fid", "fid_3d", "kid", "mmd", "ms_ssim", "psnr", "memorisation")
EVAL_SPLITS = ("all", "train", "val")  # the real set a score compares against


def check_metric_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if every one is a metric of :data:`METRICS`, else a ValueError naming the unknown ones."""
    bad = [m for m in names if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metrics {bad}; choose from {list(METRICS)}")
    return names


def parse_metric_names(text: str, option: str = "--metrics") -> tuple[str, ...]:
    """A comma list of metric names (``"fid, psnr"``) as given to ``option``, in order; a :class:`UsageError`
    in one line naming ``option``, the text and the unknown names when one is not of :data:`METRICS` or none
    is given. ``medgan3d train`` and ``medgan3d evaluate`` read their ``--metrics`` with it."""
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        what = f"unknown metrics {unknown}" if unknown else "no metric names"
        raise UsageError(f"{option} {text!r}: {what}; choose from {','.join(METRICS)}")
    return names


@dataclass(frozen=True)
class MetricsConfig:
    """What a score depends on: the settings of ``medgan3d evaluate`` (its options) and of
    :func:`medgan3d.metrics.evaluate_volumes`, recorded in a result as ``provenance.settings``.

    Names and paths only: a feature extractor or classifier built by the caller is passed to the evaluation
    beside these settings, which then record its name. The metrics themselves are described in
    docs/evaluation.md; a run's in-training scores take ``train.metrics``, ``train.metrics_samples`` and these
    settings from ``train.metrics_settings``.
    """

    metrics: tuple[str, ...] = doc(DEFAULT_METRICS, f"scores to compute, of: {', '.join(METRICS)}")
    extractor_2d: str = doc(
        "auto", "2D feature extractor: inception | random-2d | auto (inception if cached)"
    )
    extractor_3d: str = doc(
        "auto", "3D feature extractor: medicalnet[-r10|-r18|-r34|-r50] | random-3d | auto"
    )
    weights_2d: str | None = doc(
        None, "weights file of the 2D extractor, or random; null: the cached FID Inception"
    )
    weights_3d: str | None = doc(
        None, "weights file of the 3D extractor, or random; null: the cached MedicalNet"
    )
    extractor_seed: int = doc(0, "seed of the random extractors and of the random IS classifier")
    download: bool = doc(False, "allow downloading the FID Inception weights")
    all_slices: bool = doc(False, "slice FID on every slice of each plane, not the centre one")
    split: str = doc("all", "the real set: all | train | val")
    num_real: int | None = doc(None, "a seeded subset of this many real items; null: all of split")
    ms_ssim_pairs: int = doc(100, "random pairs of generated volumes MS-SSIM averages over")
    kid_subsets: int = doc(100, "subsets KID averages over")
    bootstrap: int = doc(100, "resampling rounds of the 95 % intervals (0: none)")
    seed: int = doc(0, "seed of the first volume sampled from a generator, of pairs, subsets and resampling")
    batch_size: int = doc(16, "batch of the feature extractors and the classifier")
    device: str = doc("cpu", "where the extractors and the classifier run")
    cache: str | None = doc(
        None, "cache folder (real features, weights); null: $MEDGAN3D_CACHE or ~/.cache/medgan3d"
    )
    use_cache: bool = doc(True, "read and write the cache of real features")
    classifier: str | None = doc(
        None, "is: a classifier folder (save_pretrained); null or random: a seeded random one (a smoke test)"
    )
    is_splits: int = doc(1, "is: splits of the generated set (mean and std over them)")
    slice_source: str = doc("auto", "2D images: the real axial slices, auto | all | window (SliceDataset)")
    label: float | None = doc(None, "a labelled dataset: score against the real items of this class only")

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", check_metric_names(tuple(self.metrics)))
        _require(self.split in EVAL_SPLITS, f"split {self.split!r} is not one of {', '.join(EVAL_SPLITS)}")
        _require(
            self.slice_source in SLICE_SOURCES,
            f"slice_source {self.slice_source!r} is not one of {', '.join(SLICE_SOURCES)}",
        )
        for key in ("cache", "classifier"):  # paths given as Path objects are recorded as text
            value = getattr(self, key)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, key, str(value))

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


# ------------------------------------------------------------------------------------------------ train


@dataclass(frozen=True)
class TrainConfig:
    """Training settings shared by every family (the ``train`` section); defaults are Liu et al., arXiv
    2208.03934 §4.2.3 (batch 128) and StyleGAN2.

    ``lr``, ``betas`` and ``loss`` left at null take the family's defaults (StyleGAN2: lr 0.0025, or 0.002
    from inflated weights, betas (0, 0.99), :class:`LossConfig`).
    """

    kimg: float = doc(5000.0, "total training length, thousands of real items shown to D")
    batch: int = doc(128, "global minibatch (all processes, all micro-batches)")
    batch_gpu: int = doc(8, "micro-batch per process; gradient accumulation makes up the rest")
    lr: float | None = doc(None, "learning rate; null: the family's default")
    betas: tuple[float, float] | None = doc(None, "Adam betas; null: the family's default")
    eps: float = doc(1e-8, "Adam epsilon")
    ema_kimg: float | None = doc(None, "half-life of G's EMA in kimg; null: batch · 10 / 32 (StyleGAN2 only)")
    ema_rampup: float | None = doc(
        0.05, "EMA ramp-up: half-life at most this fraction of the images seen; null: none"
    )
    tick_kimg: float = doc(4.0, "kimg per progress tick (one stats row)")
    snapshot_ticks: int = doc(50, "ticks between snapshots (PNG grid, metrics, checkpoint)")
    keep_last: int = doc(3, "checkpoints kept (older ones are pruned)")
    grid: int = doc(6, "generated samples in each snapshot PNG")
    bf16: bool | None = doc(
        None, "bf16 autocast; null: on for CUDA, off elsewhere (config.yaml records the choice)"
    )
    seed: int = doc(0, "seed of the weights, the data order and every micro-batch's randomness")
    flip: bool = doc(False, "random left-right flips of the reals")
    aug: str = doc(
        "none", "discriminator augmentation: ada | fixed:P | diffaugment | none (training/augment.py)"
    )
    aug_preset: str = doc(
        "all", "transforms the augmentation may apply: all | laterality | in-plane | intensity"
    )
    ada_target: float = doc(0.6, "ada: target of r_t = E[sign(D(real))] (Karras et al., NeurIPS 2020, §3)")
    ada_kimg: float = doc(500.0, "ada: kimg over which p can move from 0 to 1")
    cond: bool = doc(True, "a labelled dataset trains a conditional model (false: --no-cond)")
    max_bad_steps: int = doc(10, "iterations in a row with a skipped (non-finite) phase before the run stops")
    metrics: tuple[str, ...] = doc((), "metrics scored at every snapshot (medgan3d evaluate's names)")
    metrics_samples: int = doc(64, "generated volumes scored at every snapshot")
    metrics_settings: MetricsConfig | None = doc(
        None,
        "how snapshots score (extractors, weights_2d/3d, bootstrap, split, cache, ...: the Evaluation keys);"
        " its metrics, seed and device are train.metrics, train.seed and the generator's; null: the defaults",
        omit_default=True,
    )
    loss: LossSettings | None = doc(None, "the family's objective settings (train.loss); null: its defaults")

    def __post_init__(self) -> None:
        if self.betas is not None:
            object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "metrics", check_metric_names(tuple(self.metrics)))
        if self.metrics_settings is not None and not isinstance(self.metrics_settings, MetricsConfig):
            raise ValueError(
                f"metrics_settings must be a mapping of evaluation keys, got {type(self.metrics_settings).__name__}"
            )
        # checked as given: the optimizers later scale lr for lazy regularisation, errors must not show that
        bounds = {"kimg": ">", "tick_kimg": ">", "eps": ">", "lr": ">", "ema_kimg": ">=", "ema_rampup": ">="}
        for key, op in bounds.items():
            value = getattr(self, key)
            if value is None and key in ("lr", "ema_kimg", "ema_rampup"):  # None: the default
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and (value > 0 if op == ">" else value >= 0) and value != float("inf")):
                raise ValueError(f"{key} must be a number {op} 0, got {value!r}")
        minimum = {
            "batch": 1,
            "batch_gpu": 1,
            "snapshot_ticks": 1,
            "keep_last": 1,
            "grid": 1,
            "max_bad_steps": 0,
            "metrics_samples": 2,
        }
        for key, low in minimum.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {value!r}")
        if self.betas is not None and not (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), got {list(self.betas)}")
        if self.aug != "none" or self.aug_preset != "all":
            from medgan3d.training.augment import (  # torch: only when augmentation is asked
                PRESETS,
                parse_mode,
            )

            parse_mode(self.aug)
            if self.aug_preset not in PRESETS:
                raise ValueError(f"aug_preset {self.aug_preset!r} is not one of {', '.join(PRESETS)}")
        if not (isinstance(self.ada_target, int | float) and -1 < self.ada_target < 1):
            raise ValueError(f"ada_target must be a number in (-1, 1), got {self.ada_target!r}")
        if not (isinstance(self.ada_kimg, int | float) and 0 < self.ada_kimg < float("inf")):
            raise ValueError(f"ada_kimg must be a number > 0, got {self.ada_kimg!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON types (tuples as lists, the loss settings as a mapping)."""
        return to_dict(self)


def _loss_owner(family: Any) -> tuple[type, str]:
    """The loss settings class and family name of a training family or a model config."""
    name = getattr(family, "name", None) or getattr(family, "family", DEFAULT_FAMILY)
    return family.loss_cls, str(name)


def loss_from_dict(data: Any, family: Any, source: str = "<dict>") -> LossSettings:
    """The objective settings of ``family`` (a training family or a model config, both name their
    ``loss_cls``) from a ``train.loss`` mapping, None (the defaults) or settings already of that class."""
    loss_cls, name = _loss_owner(family)
    if isinstance(data, loss_cls):
        return data  # type: ignore[return-value]  # an instance of the family's loss class
    if data is None or isinstance(data, Mapping):
        return from_dict(loss_cls, data or {}, source, f"{name} loss")
    raise ConfigError(f"{source}: loss settings {type(data).__name__} do not belong to family {name}")


def resolve_loss(cfg: TrainConfig, family: Any, source: str = "<config>") -> TrainConfig:
    """``cfg`` with ``loss`` as the settings of ``family`` (None: its defaults)."""
    loss = loss_from_dict(cfg.loss, family, source)
    return cfg if loss is cfg.loss else dataclasses.replace(cfg, loss=loss)


def train_config_from_dict(data: Any, source: str = "<dict>", family: Any = None) -> TrainConfig:
    """A :class:`TrainConfig` from a preset's or run's ``train`` section; ``loss`` is read as the settings of
    ``family`` (a training family or a model config). Without a family, a ``loss`` mapping is refused."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the train section must be a mapping, got {type(data).__name__}")
    rest = {k: v for k, v in data.items() if k != "loss"}
    cfg = from_dict(TrainConfig, rest, source, "train")
    if family is None:
        if data.get("loss") is not None:
            raise ConfigError(f"{source}: train.loss needs the model family to be read")
        return cfg
    return dataclasses.replace(cfg, loss=loss_from_dict(data.get("loss"), family, source))


# ------------------------------------------------------------------------------------------------ model


def _check_labels(labels: dict[str, Any] | None) -> None:
    if labels is not None:
        from medgan3d.data.labels import LabelSpec

        LabelSpec.from_dict(labels)


def _c_dim(labels: dict[str, Any] | None) -> int:
    if not labels:
        return 0
    from medgan3d.data.labels import LabelSpec

    return LabelSpec.from_dict(labels).c_dim


def arg(meaning: str, to: Mapping[type, str], default: Any = dataclasses.MISSING) -> Any:
    """A model field that networks take: ``to`` maps each network class to its constructor parameter (the one
    place where a field is renamed, e.g. ``g_variant`` → ``Generator(variant=...)``). Its default is the
    constructors' own (config from the constructor, as diffusers' ``register_to_config``): every network in
    ``to`` must agree. ``default`` only where the family deliberately differs from the constructor."""
    if default is dataclasses.MISSING:
        found = [inspect.signature(cls).parameters[param].default for cls, param in to.items()]
        if not found or inspect.Parameter.empty in found or any(d != found[0] for d in found):
            raise TypeError(f"{[c.__name__ for c in to]} must have one default for this field, got {found}")
        default = found[0]
    return field(default=default, metadata={"doc": meaning, "to": dict(to)})


class BuildsNetworks:
    """A model config that builds its family's networks: ``networks`` names each class (the names a
    checkpoint uses); a subclass adds the constructor arguments that are the family's, not the user's, in
    :meth:`network_kwargs`."""

    networks: ClassVar[dict[str, type]]
    build_order: ClassVar[tuple[str, ...]] = ()  # (): the order of ``networks``

    def network_kwargs(self, name: str) -> dict[str, Any]:
        """The constructor arguments of network ``name``: every field whose ``to`` names its class."""
        cls = self.networks[name]
        given = {
            f.metadata["to"][cls]: getattr(self, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]  # self is a dataclass
            if cls in f.metadata.get("to", {})
        }
        return given

    def build(self, name: str) -> Any:
        """Network ``name`` built from this config."""
        return self.networks[name](**self.network_kwargs(name))

    def build_networks(self) -> dict[str, Any]:
        """Every network of the family, by checkpoint name (``medgan3d info`` counts them), constructed in
        ``build_order``: the random initialisation draws from torch's RNG in that order, so a seeded run's
        initial weights depend on it."""
        built = {name: self.build(name) for name in self.build_order or tuple(self.networks)}
        return {name: built[name] for name in self.networks}


def _both(param: str) -> dict[type, str]:
    return {Generator: param, Discriminator: param}


@dataclass(frozen=True)
class ModelConfig(BuildsNetworks):
    """Architecture of a StyleGAN2-family generator + discriminator pair (Karras et al., CVPR 2020; the
    variants of Liu et al., arXiv 2208.03934 §3.3). Defaults are those of :class:`Generator` and
    :class:`Discriminator`."""

    family: ClassVar[str] = "stylegan2"
    loss_cls: ClassVar[type[LossConfig]] = LossConfig
    networks: ClassVar[dict[str, type]] = {"G": Generator, "D": Discriminator}
    spatial_dims: int = arg("3: volumes; 2: the 2D twin on axial slices", _both("spatial_dims"))
    base_shape: tuple[int, ...] = arg(
        "shape of the learned constant (D, H, W), doubled by every block", _both("base_shape")
    )
    num_blocks: int = arg(
        "synthesis blocks: the output is base_shape · 2^(num_blocks − 1)", _both("num_blocks")
    )
    channels: int | tuple[int, ...] = arg(
        "feature channels of every block, or one per block", _both("channels")
    )
    z_dim: int = arg("latent z size", {Generator: "z_dim"})
    w_dim: int = arg("intermediate latent w size", {Generator: "w_dim"})
    mapping_layers: int = arg("fully connected layers of the mapping network", {Generator: "mapping_layers"})
    img_channels: int = arg("image channels", _both("img_channels"))
    g_variant: str = arg(f"generator convolutions: {' | '.join(G_VARIANTS)}", {Generator: "variant"})
    d_variant: str = arg(f"discriminator convolutions: {' | '.join(D_VARIANTS)}", {Discriminator: "variant"})
    mbstd_group_size: int = arg("minibatch-std group size of D", {Discriminator: "mbstd_group_size"})
    d_group_count: int = arg(
        "convolution groups of Group-D (d_variant group)", {Discriminator: "group_count"}
    )
    g_architecture: str = arg(
        "skip: toRGB per block, summed; orig: one toRGB at the end (3D-StyleGAN, Hong et al. 2021)",
        {Generator: "architecture"},
    )
    labels: dict[str, Any] | None = doc(
        None,
        "a conditional model's labels (a LabelSpec mapping, medgan3d.data."
        "labels); set by train on a labelled dataset",
        omit_default=True,
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_shape", tuple(int(s) for s in self.base_shape))
        if not isinstance(self.channels, int):
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if len(self.base_shape) != self.spatial_dims:
            raise ValueError(f"base_shape {list(self.base_shape)} must have {self.spatial_dims} dims")
        if self.g_variant not in G_VARIANTS:
            raise ValueError(f"g_variant {self.g_variant!r} not in {G_VARIANTS}")
        if self.d_variant not in D_VARIANTS:
            raise ValueError(f"d_variant {self.d_variant!r} not in {D_VARIANTS}")
        if self.g_architecture not in ("skip", "orig"):
            raise ValueError(f"g_architecture {self.g_architecture!r} not in ('skip', 'orig')")
        if self.num_blocks < 1:
            raise ValueError("num_blocks must be >= 1")
        _check_labels(self.labels)

    @property
    def c_dim(self) -> int:
        """Width of the label vector a conditional model takes (0: unconditional)."""
        return _c_dim(self.labels)

    def network_kwargs(self, name: str) -> dict[str, Any]:
        """As :meth:`BuildsNetworks.network_kwargs`, with the label width of a conditional model (G and D)."""
        return super().network_kwargs(name) | ({"c_dim": self.c_dim} if self.c_dim else {})

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``[C, *spatial]`` of one generated sample."""
        scale = 2 ** (self.num_blocks - 1)
        return (self.img_channels, *(s * scale for s in self.base_shape))

    def to_dict(self) -> dict[str, Any]:
        """The ``model`` section (plain YAML/JSON types); :func:`model_config_from_dict` reads it back."""
        return model_to_dict(self)

    def twin_2d(self) -> ModelConfig:
        """The 2D twin: same widths, mapping and variants; the base loses its depth (first) axis. It is
        unconditional (pretraining sees slices, which carry no labels)."""
        if self.spatial_dims == 2:
            return self
        return dataclasses.replace(self, spatial_dims=2, base_shape=self.base_shape[1:], labels=None)

    def build_generator(self) -> Generator:
        return self.build("G")

    def build_discriminator(self) -> Discriminator:
        return self.build("D")


_HAGAN = {"G": HAGANGenerator, "D": HAGANDiscriminator, "E_H": HAGANEncoder, "E_G": HAGANLatentEncoder}


@dataclass(frozen=True)
class HAGANConfig(BuildsNetworks):
    """Architecture of HA-GAN (Sun et al., "Hierarchical Amortized GAN for 3D High Resolution Medical Image
    Synthesis", IEEE JBHI 2022, §III and Supplementary): G = G^A → {G^L, G^H}, D = D^H + D^L, E^H, E^G.

    ``resolution`` R is the side of the full volume (R³), ``latent_dim`` the size of z, ``width`` the channels
    of the latent feature map (64 published; every other width scales with it). 128 and 256 at width 64 and
    latent 1024 are the published models. Defaults are those of the networks' constructors.
    """

    family: ClassVar[str] = "hagan"
    loss_cls: ClassVar[type[HAGANLoss]] = HAGANLoss
    networks: ClassVar[dict[str, type]] = _HAGAN
    spatial_dims: ClassVar[int] = 3
    resolution: int = arg(
        "side R of the R³ volume (a power of two >= 32)",
        {HAGANGenerator: "resolution", HAGANDiscriminator: "resolution", HAGANLatentEncoder: "resolution"},
    )
    latent_dim: int = arg("size of z", {HAGANGenerator: "latent_dim", HAGANLatentEncoder: "latent_dim"})
    width: int = arg(
        "channels of the latent feature map (every other width scales with it)",
        {cls: "width" for cls in _HAGAN.values()},
    )
    labels: dict[str, Any] | None = doc(
        None,
        "the conditional variant's classes (a class LabelSpec mapping); set by train on a labelled dataset",
        omit_default=True,
    )

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 32 or r & (r - 1):
            raise ValueError(f"resolution must be a power of two >= 32, got {r}")
        if self.latent_dim < 1 or self.width < 1:
            raise ValueError("latent_dim and width must be positive")
        _check_labels(self.labels)
        if self.labels and self.labels.get("kind") != "class":
            raise ValueError("HA-GAN's conditional variant takes integer classes, not float values")

    @property
    def c_dim(self) -> int:
        """Classes of the conditional variant (0: unconditional)."""
        return _c_dim(self.labels)

    def network_kwargs(self, name: str) -> dict[str, Any]:
        """As :meth:`BuildsNetworks.network_kwargs`, with the classes of the conditional variant (G and D)."""
        return super().network_kwargs(name) | ({"num_class": self.c_dim} if name in ("G", "D") else {})

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (1, self.resolution, self.resolution, self.resolution)

    @property
    def z_dim(self) -> int:
        return self.latent_dim

    def to_dict(self) -> dict[str, Any]:
        return model_to_dict(self)

    def twin_2d(self) -> HAGANConfig:
        raise ValueError("HA-GAN has no 2D twin: pretraining on slices and inflation are StyleGAN2-only")

    def build_generator(self) -> HAGANGenerator:
        return self.build("G")

    def build_discriminator(self) -> HAGANDiscriminator:
        return self.build("D")

    def build_encoder(self) -> HAGANEncoder:
        """E^H: a sub-volume (or the whole volume) → latent feature map."""
        return self.build("E_H")

    def build_latent_encoder(self) -> HAGANLatentEncoder:
        """E^G: the whole latent feature map → z."""
        return self.build("E_G")

    def flop_probes(self, nets: dict[str, Any], batch: int) -> dict[str, tuple[Any, tuple[Any, ...]]]:
        """What ``info`` times: G's full-volume inference (G^A + G^H over the whole latent map) and one D call
        on a training pair; inputs are made with ``torch.empty`` (the caller picks the device, e.g. meta)."""
        import torch

        R = self.resolution
        sub, low = torch.empty(batch, 1, R // 8, R, R), torch.empty(batch, 1, R // 4, R // 4, R // 4)
        return {
            "G": (nets["G"].generate, (torch.empty(batch, self.latent_dim),)),
            "D": (nets["D"], (sub, low, torch.empty(batch))),
        }


_VOLUME_NETS = (BaselineGenerator, BaselineDiscriminator, BaselineEncoder, BaselineVAEEncoder)
_CRITICS = (BaselineDiscriminator, BaselineEncoder, BaselineVAEEncoder)  # the d_width stacks


@dataclass(frozen=True)
class BaselineConfig(BuildsNetworks):
    """Architecture of the 3D GAN baselines of Liu et al. (arXiv 2208.03934, Tables 6–8): Kwon et al.'s
    networks (MICCAI 2019; :mod:`medgan3d.networks.baselines`; their code: github.com/cyclomon/3dbraingen).

    ``shape`` (D, H, W) is the volume (each axis a multiple of 2^levels: G's seed and the last D/E kernel are
    ``shape``/2^levels), ``latent_dim`` L, ``g_width`` c (G runs 8c → c), ``d_width`` d (D/E run d → 8d),
    ``levels`` the number of ×2 stages (4 as the reference; the widths then run to c·2^(levels−1)). The
    paper's sizes are L = 100, c = d = 16, levels 4 (Liu et al., arXiv 2208.03934 Tables 6–7). ``d_norm``: the critic's normalisation
    (``batch`` as the reference; ``layer``/``instance``/``none`` for a gradient penalty without batch coupling).
    ``sample_norm``: BN statistics when sampling (``running``; ``batch`` as the reference's test notebook).
    Defaults are those of the networks' constructors.
    """

    family: ClassVar[str] = ""
    loss_cls: ClassVar[type] = WGANGPLoss
    networks: ClassVar[dict[str, type]] = {"G": BaselineGenerator, "D": BaselineDiscriminator}
    spatial_dims: ClassVar[int] = 3
    stem: ClassVar[str] = "linear"  # G's first layer: "linear" (WGAN-GP, VAE-GAN) or "transposed" (α models)
    shape: tuple[int, int, int] = arg(
        "volume (D, H, W), each axis a multiple of 2^levels", {cls: "shape" for cls in _VOLUME_NETS}
    )
    latent_dim: int = arg(
        "size L of z (and of E's code)",
        {
            cls: "latent_dim"
            for cls in (BaselineGenerator, BaselineEncoder, BaselineVAEEncoder, BaselineCodeDiscriminator)
        },
    )
    g_width: int = arg("G's width c (G runs 8c → c)", {BaselineGenerator: "width"})
    d_width: int = arg("D's and E's width d (they run d → 8d)", {cls: "width" for cls in _CRITICS})
    d_norm: str = arg(
        "the critic's normalisation: batch | layer | instance | none", {BaselineDiscriminator: "norm"}
    )
    sample_norm: str = arg(
        "G's BatchNorm statistics when sampling: running | batch", {BaselineGenerator: "sample_norm"}
    )
    levels: int = arg("number of ×2 stages", {cls: "levels" for cls in _VOLUME_NETS})

    def __post_init__(self) -> None:
        from medgan3d.networks.baselines import NORMS, SAMPLE_NORMS, seed_shape

        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        seed_shape(self.shape, self.levels)
        if min(self.latent_dim, self.g_width, self.d_width) < 1:
            raise ValueError("latent_dim, g_width and d_width must be positive")
        if self.d_norm not in NORMS:
            raise ValueError(f"d_norm {self.d_norm!r} not in {NORMS}")
        if self.sample_norm not in SAMPLE_NORMS:
            raise ValueError(f"sample_norm {self.sample_norm!r} not in {SAMPLE_NORMS}")

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (1, *self.shape)

    @property
    def z_dim(self) -> int:
        return self.latent_dim

    def to_dict(self) -> dict[str, Any]:
        return model_to_dict(self)

    def network_kwargs(self, name: str) -> dict[str, Any]:
        return super().network_kwargs(name) | ({"stem": self.stem} if name == "G" else {})

    def twin_2d(self) -> BaselineConfig:
        raise ValueError(f"{self.family} has no 2D twin (slice pretraining and inflation are StyleGAN2's)")

    def build_generator(self) -> BaselineGenerator:
        return self.build("G")

    def build_discriminator(self) -> BaselineDiscriminator:
        return self.build("D")

    def flop_probes(self, nets: dict[str, Any], batch: int) -> dict[str, tuple[Any, tuple[Any, ...]]]:
        """One forward of every network: G and CD on codes, D and E on volumes (``torch.empty`` inputs)."""
        import torch

        z, x = torch.empty(batch, self.latent_dim), torch.empty(batch, 1, *self.shape)
        return {name: (net, (z if name in ("G", "CD") else x,)) for name, net in nets.items()}


@dataclass(frozen=True)
class WGANGPConfig(BaselineConfig):
    """3D-WGAN-GP: G (fully connected stem) + critic. ``critic_head``: ``patch`` = the reference's k4 s2 p1
    last conv (2×2×2 scores, averaged by the loss), ``global`` = one score per volume."""

    family: ClassVar[str] = "wgan-gp"
    loss_cls: ClassVar[type] = WGANGPLoss
    # the family's choice, not the constructor's default (global, what the other baselines' D uses)
    critic_head: str = arg(
        "critic's last layer: patch (the reference's 2×2×2 scores) | global",
        {BaselineDiscriminator: "head"},
        default="patch",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critic_head not in ("global", "patch"):
            raise ValueError(f"critic_head {self.critic_head!r} not in ('global', 'patch')")


@dataclass(frozen=True)
class VAEGANConfig(BaselineConfig):
    """3D-VAE-GAN: G (fully connected stem), D, VAE encoder E with heads of width ``vae_hidden`` (H)."""

    family: ClassVar[str] = "vae-gan"
    loss_cls: ClassVar[type] = VAEGANLoss
    networks: ClassVar[dict[str, type]] = BaselineConfig.networks | {"E": BaselineVAEEncoder}
    build_order: ClassVar[tuple[str, ...]] = ("E", "G", "D")  # as before config-from-constructor: same seeds
    vae_hidden: int = arg("width H of the VAE encoder's heads", {BaselineVAEEncoder: "hidden"})


@dataclass(frozen=True)
class AlphaGANConfig(BaselineConfig):
    """3D-α-GAN: G (transposed-conv stem), D, deterministic encoder E, code discriminator CD of width
    ``code_hidden`` (U) with normalisation ``cd_norm``."""

    family: ClassVar[str] = "alpha-gan"
    loss_cls: ClassVar[type] = AlphaGANLoss
    networks: ClassVar[dict[str, type]] = BaselineConfig.networks | {
        "E": BaselineEncoder,
        "CD": BaselineCodeDiscriminator,
    }
    build_order: ClassVar[tuple[str, ...]] = ("E", "CD", "G", "D")  # as before: same seeded weights
    stem: ClassVar[str] = "transposed"
    code_hidden: int = arg("width U of the code discriminator", {BaselineCodeDiscriminator: "hidden"})
    cd_norm: str = arg(
        "the code discriminator's normalisation: batch | layer | none", {BaselineCodeDiscriminator: "norm"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cd_norm not in ("batch", "layer", "none"):
            raise ValueError(f"cd_norm {self.cd_norm!r} not in ('batch', 'layer', 'none')")


@dataclass(frozen=True)
class AlphaWGANGPConfig(AlphaGANConfig):
    """3D-α-WGAN-GP: the α-GAN networks, trained with Wasserstein losses and gradient penalties."""

    family: ClassVar[str] = "alpha-wgan-gp"
    loss_cls: ClassVar[type] = AlphaWGANGPLoss


ModelSettings = ModelConfig | HAGANConfig | BaselineConfig
MODEL_CONFIGS: dict[str, type[ModelConfig] | type[HAGANConfig] | type[BaselineConfig]] = {
    "stylegan2": ModelConfig,
    "hagan": HAGANConfig,
    **{cls.family: cls for cls in (WGANGPConfig, VAEGANConfig, AlphaGANConfig, AlphaWGANGPConfig)},
}


def model_to_dict(model: ModelSettings) -> dict[str, Any]:
    """The ``model`` section: ``family`` first unless it is the default (StyleGAN2), then every field."""
    tag = {} if model.family == DEFAULT_FAMILY else {"family": model.family}
    return tag | to_dict(model)


def model_config_from_dict(data: Any, source: str = "<dict>") -> ModelSettings:
    """A model config of the family named by ``family`` (default ``stylegan2``); unknown keys are refused."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the model section must be a mapping, got {type(data).__name__}")
    family = data.get("family", DEFAULT_FAMILY)
    if family not in MODEL_CONFIGS:
        raise ConfigError(f"{source}: unknown model family {family!r} (known: {', '.join(MODEL_CONFIGS)})")
    rest = {k: v for k, v in data.items() if k != "family"}
    return from_dict(MODEL_CONFIGS[family], rest, source, f"{family} model")


# ------------------------------------------------------------------------------------------------ presets


@dataclass(frozen=True)
class Preset:
    """A named, documented configuration: the header keys, ``model`` and ``train``."""

    name: str = doc("", "the preset's name (the file's stem)")
    model: ModelSettings = field(default_factory=lambda: ModelConfig(), metadata={"doc": "the model section"})
    description: str = doc("", "one line: what the preset is")
    reference: str = doc("", "the paper (authors, title, venue, section) it reproduces")
    paper_params_m: float | None = doc(None, "G+D parameters the paper reports, in millions (medgan3d info)")
    data_preset: str | None = doc(None, "the preprocessing preset of medgan3d prepare this model expects")
    pretrain_kimg: float = doc(
        25000.0,
        "default length of medgan3d pretrain (the 2D twin on axial slices), thousands of slices; "
        "25,000: Liu et al., arXiv 2208.03934 §4.2.3",
    )
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"doc": "the train section"})

    def __post_init__(self) -> None:
        length = self.pretrain_kimg
        if isinstance(length, bool) or not isinstance(length, int | float) or not 0 < length < float("inf"):
            raise ValueError(f"pretrain_kimg must be a number > 0, got {length!r}")

    def twin_2d(self) -> Preset:
        return dataclasses.replace(
            self, name=f"{self.name}-2d", model=self.model.twin_2d(), paper_params_m=None
        )


def _configs_dir() -> Path:
    return Path(str(resources.files("medgan3d") / "configs"))


def list_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.stem for p in _configs_dir().glob("*.yaml"))


def preset_from_dict(data: Any, source: str = "<dict>") -> Preset:
    """Build a :class:`Preset` from parsed YAML, naming ``source`` in errors; ``train.loss`` is read as the
    settings of the model's family."""
    if not isinstance(data, Mapping) or "model" not in data:
        raise ConfigError(f"{source}: a preset needs a 'model' section")
    model = model_config_from_dict(data["model"], source)
    train = train_config_from_dict(data.get("train") or {}, source, model)
    header = {k: v for k, v in data.items() if k not in ("model", "train")}
    return dataclasses.replace(from_dict(Preset, header, source, "preset"), model=model, train=train)


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a preset by name (``coca-ss``; ``coca-ss-2d`` for its 2D twin) or from a YAML file path."""
    text_name = str(name_or_path)
    twin = text_name.endswith("-2d") and not text_name.endswith((".yaml", ".yml"))
    base_name = text_name[:-3] if twin else text_name
    path = Path(base_name)
    if not path.suffix:
        path = _configs_dir() / f"{base_name}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown preset {text_name!r}; available: {', '.join(list_presets())}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: preset file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    preset = preset_from_dict(data, str(path))
    return preset.twin_2d() if twin else preset


def preset_to_yaml(preset: Preset) -> str:
    """YAML text of a preset, every train key written out (round-trips through :func:`preset_from_dict`)."""
    header = ("name", "description", "reference", "paper_params_m", "data_preset", "pretrain_kimg")
    data: dict[str, Any] = {k: getattr(preset, k) for k in header if getattr(preset, k) is not None}
    data |= {"model": model_to_dict(preset.model), "train": preset.train.to_dict()}
    return yaml.safe_dump(data, sort_keys=False)


# ------------------------------------------------------------------------------------------------ schema doc

SCHEMA_BEGIN = "<!-- BEGIN generated by medgan3d.config.schema_markdown(); edit the dataclasses, not this -->"
SCHEMA_END = "<!-- END generated -->"


def _yaml_value(value: Any) -> str:
    if value == "":
        return '""'
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def _section_table(cls: type, skip: tuple[str, ...] = ()) -> list[str]:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else "(see below)"
        shown = f"`{_yaml_value(default)}`" if f.default is not dataclasses.MISSING else default
        meaning = str(f.metadata.get("doc", "")).replace("|", "\\|")
        rows.append(f"| `{f.name}` | {shown} | {meaning} |")
    return rows


def _summary(cls: type) -> str:
    """The first paragraph of a docstring as one Markdown line (reST roles and literals as code spans)."""
    text = " ".join((cls.__doc__ or "").split("\n\n")[0].split()).replace("``", "`")
    return re.sub(r":(?:class|func|meth|mod|data):`~?([^`]+)`", r"`\1`", text)


def schema_sections() -> list[tuple[str, type, tuple[str, ...]]]:
    """(heading, dataclass, keys left out) of every YAML section, in the order docs/configuration.md lists them."""
    sections: list[tuple[str, type, tuple[str, ...]]] = [("Header (top level)", Preset, ("model", "train"))]
    for name, cls in MODEL_CONFIGS.items():
        tag = "" if name == DEFAULT_FAMILY else f"family: {name}"
        sections.append(
            (f"`model` — {name}" + (" (the default family)" if not tag else f" (`{tag}`)"), cls, ())
        )
    sections.append(("`train`", TrainConfig, ()))
    for name, cls in MODEL_CONFIGS.items():
        sections.append((f"`train.loss` — {name}", cls.loss_cls, ()))
    sections.append(
        ("Evaluation (`medgan3d evaluate`; `provenance.settings` of metrics.json)", MetricsConfig, ())
    )
    return sections


def schema_markdown() -> str:
    """The YAML schema as Markdown: one table (key, default, meaning) per section, made from the dataclasses."""
    lines = [SCHEMA_BEGIN, ""]
    for heading, cls, skip in schema_sections():
        lines += [
            f"### {heading}",
            "",
            f"`{cls.__name__}`: {_summary(cls)}",
            "",
            *_section_table(cls, skip),
            "",
        ]
    return "\n".join([*lines, SCHEMA_END]) + "\n"


def update_schema_doc(path: str | Path) -> bool:
    """Replace the generated part of ``path`` with :func:`schema_markdown`; True if the file changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(SCHEMA_BEGIN, 1)
    tail = rest.split(SCHEMA_END, 1)[1].removeprefix("\n")
    new = head + schema_markdown() + tail
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
