"""Typed configuration ⇄ YAML, and the named presets shipped in ``configs/``.

A preset names an architecture from the papers (Liu et al., arXiv 2208.03934 §4.2.2, §4.3.3, Tables 3, 5, 7). Each 3D preset
has a 2D twin (:meth:`ModelConfig.twin_2d`) with the same widths and variants, for pretraining on slices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from medgan3d.networks.layers import D_VARIANTS, G_VARIANTS

if TYPE_CHECKING:
    from medgan3d.networks import Discriminator, Generator
    from medgan3d.networks.baselines import BaselineDiscriminator, BaselineGenerator
    from medgan3d.networks.hagan import (
        HAGANDiscriminator,
        HAGANEncoder,
        HAGANGenerator,
        HAGANLatentEncoder,
    )


def _check_labels(labels: dict[str, Any] | None) -> None:
    if labels is not None:
        from medgan3d.data.labels import LabelSpec

        LabelSpec.from_dict(labels)


def _c_dim(labels: dict[str, Any] | None) -> int:
    if not labels:
        return 0
    from medgan3d.data.labels import LabelSpec

    return LabelSpec.from_dict(labels).c_dim


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a StyleGAN2-family generator + discriminator pair."""

    family: ClassVar[str] = "stylegan2"
    spatial_dims: int = 3
    base_shape: tuple[int, ...] = (2, 4, 4)
    num_blocks: int = 5
    channels: int | tuple[int, ...] = 32
    z_dim: int = 64
    w_dim: int = 64
    mapping_layers: int = 8
    img_channels: int = 1
    g_variant: str = "split_shuffle"
    d_variant: str = "split_shuffle"
    mbstd_group_size: int = 4
    d_group_count: int = 4
    g_architecture: str = "skip"  # "orig": one toRGB at the end (3D-StyleGAN, Hong et al. 2021)
    # a conditional model's LabelSpec as a mapping (medgan3d.data.labels); set by train on a labelled dataset
    labels: dict[str, Any] | None = None

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

    @property
    def output_shape(self) -> tuple[int, ...]:
        """``[C, *spatial]`` of one generated sample."""
        scale = 2 ** (self.num_blocks - 1)
        return (self.img_channels, *(s * scale for s in self.base_shape))

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON types (tuples as lists); ``ModelConfig(**d)`` rebuilds it. ``labels`` only when set."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        return out if self.labels else {k: v for k, v in out.items() if k != "labels"}

    def twin_2d(self) -> ModelConfig:
        """The 2D twin: same widths, mapping and variants; the base loses its depth (first) axis. It is
        unconditional (pretraining sees slices, which carry no labels)."""
        if self.spatial_dims == 2:
            return self
        return dataclasses.replace(self, spatial_dims=2, base_shape=self.base_shape[1:], labels=None)

    def build_generator(self) -> Generator:
        from medgan3d.networks import Generator

        return Generator(**self.generator_kwargs())

    def build_discriminator(self) -> Discriminator:
        from medgan3d.networks import Discriminator

        return Discriminator(**self.discriminator_kwargs())

    def generator_kwargs(self) -> dict[str, Any]:
        return dict(
            spatial_dims=self.spatial_dims,
            base_shape=self.base_shape,
            num_blocks=self.num_blocks,
            channels=self.channels,
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            mapping_layers=self.mapping_layers,
            img_channels=self.img_channels,
            variant=self.g_variant,
            architecture=self.g_architecture,
        ) | ({"c_dim": self.c_dim} if self.c_dim else {})

    def discriminator_kwargs(self) -> dict[str, Any]:
        return dict(
            spatial_dims=self.spatial_dims,
            base_shape=self.base_shape,
            num_blocks=self.num_blocks,
            channels=self.channels,
            img_channels=self.img_channels,
            variant=self.d_variant,
            mbstd_group_size=self.mbstd_group_size,
            group_count=self.d_group_count,
        ) | ({"c_dim": self.c_dim} if self.c_dim else {})


@dataclass(frozen=True)
class HAGANConfig:
    """Architecture of HA-GAN (Sun et al., "Hierarchical Amortized GAN for 3D High Resolution Medical Image
    Synthesis", IEEE JBHI 2022, §III and Supplementary): G = G^A → {G^L, G^H}, D = D^H + D^L, E^H, E^G.

    ``resolution`` R is the side of the full volume (R³), ``latent_dim`` the size of z, ``width`` the channels
    of the latent feature map (64 published; every other width scales with it). 128 and 256 at width 64 and
    latent 1024 are the published models.
    """

    family: ClassVar[str] = "hagan"
    spatial_dims: ClassVar[int] = 3
    resolution: int = 256
    latent_dim: int = 1024
    width: int = 64
    # the conditional variant's classes (a class LabelSpec as a mapping); set by train on a labelled dataset
    labels: dict[str, Any] | None = None

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

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (1, self.resolution, self.resolution, self.resolution)

    @property
    def z_dim(self) -> int:
        return self.latent_dim

    def to_dict(self) -> dict[str, Any]:
        out = {"family": self.family, **dataclasses.asdict(self)}
        return out if self.labels else {k: v for k, v in out.items() if k != "labels"}

    def twin_2d(self) -> HAGANConfig:
        raise ValueError("HA-GAN has no 2D twin: pretraining on slices and inflation are StyleGAN2-only")

    def build_generator(self) -> HAGANGenerator:
        from medgan3d.networks.hagan import HAGANGenerator

        return HAGANGenerator(self.resolution, self.latent_dim, self.width, num_class=self.c_dim)

    def build_discriminator(self) -> HAGANDiscriminator:
        from medgan3d.networks.hagan import HAGANDiscriminator

        return HAGANDiscriminator(self.resolution, self.width, num_class=self.c_dim)

    def build_encoder(self) -> HAGANEncoder:
        """E^H: a sub-volume (or the whole volume) → latent feature map."""
        from medgan3d.networks.hagan import HAGANEncoder

        return HAGANEncoder(self.width)

    def build_latent_encoder(self) -> HAGANLatentEncoder:
        """E^G: the whole latent feature map → z."""
        from medgan3d.networks.hagan import HAGANLatentEncoder

        return HAGANLatentEncoder(self.resolution, self.latent_dim, self.width)

    def build_networks(self) -> dict[str, Any]:
        """Every network of the family, by checkpoint name (``medgan3d info`` counts them)."""
        return {"G": self.build_generator(), "D": self.build_discriminator(), "E_H": self.build_encoder(),
                "E_G": self.build_latent_encoder()}  # fmt: skip

    def flop_probes(self, nets: dict[str, Any], batch: int) -> dict[str, tuple[Any, tuple[Any, ...]]]:
        """What ``info`` times: G's full-volume inference (G^A + G^H over the whole latent map) and one D call
        on a training pair; inputs are made with ``torch.empty`` (the caller picks the device, e.g. meta)."""
        import torch

        R = self.resolution
        sub, low = torch.empty(batch, 1, R // 8, R, R), torch.empty(batch, 1, R // 4, R // 4, R // 4)
        return {"G": (nets["G"].generate, (torch.empty(batch, self.latent_dim),)),
                "D": (nets["D"], (sub, low, torch.empty(batch)))}  # fmt: skip


@dataclass(frozen=True)
class BaselineConfig:
    """Architecture of the 3D GAN baselines of Liu et al. (arXiv 2208.03934, Tables 6–8): Kwon et al.'s
    networks (MICCAI 2019; :mod:`medgan3d.networks.baselines`, facts in ``shared/specs/baselines.md``).

    ``shape`` (D, H, W) is the volume (each axis a multiple of 2^levels: G's seed and the last D/E kernel are
    ``shape``/2^levels), ``latent_dim`` L, ``g_width`` c (G runs 8c → c), ``d_width`` d (D/E run d → 8d),
    ``levels`` the number of ×2 stages (4 as the reference; the widths then run to c·2^(levels−1)). The
    paper's sizes are L = 100, c = d = 16, levels 4 (spec §3). ``d_norm``: the critic's normalisation
    (``batch`` as the reference; ``layer``/``instance``/``none`` for a gradient penalty without batch coupling).
    ``sample_norm``: BN statistics when sampling (``running``; ``batch`` as the reference's test notebook).
    """

    family: ClassVar[str] = ""
    spatial_dims: ClassVar[int] = 3
    stem: ClassVar[str] = "linear"  # G's first layer: "linear" (WGAN-GP, VAE-GAN) or "transposed" (α models)
    shape: tuple[int, int, int] = (64, 64, 64)
    latent_dim: int = 100
    g_width: int = 16
    d_width: int = 16
    d_norm: str = "batch"
    sample_norm: str = "running"
    levels: int = 4

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
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        return {"family": self.family, **data}

    def twin_2d(self) -> BaselineConfig:
        raise ValueError(f"{self.family} has no 2D twin (slice pretraining and inflation are StyleGAN2's)")

    def build_generator(self) -> BaselineGenerator:
        from medgan3d.networks.baselines import BaselineGenerator

        return BaselineGenerator(
            self.shape, self.latent_dim, self.g_width, self.stem, self.sample_norm, self.levels
        )

    def build_discriminator(self) -> BaselineDiscriminator:
        from medgan3d.networks.baselines import BaselineDiscriminator

        return BaselineDiscriminator(self.shape, self.d_width, self.d_norm, "global", self.levels)

    def build_networks(self) -> dict[str, Any]:
        return {"G": self.build_generator(), "D": self.build_discriminator()}

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
    critic_head: str = "patch"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.critic_head not in ("global", "patch"):
            raise ValueError(f"critic_head {self.critic_head!r} not in ('global', 'patch')")

    def build_discriminator(self) -> BaselineDiscriminator:
        from medgan3d.networks.baselines import BaselineDiscriminator

        return BaselineDiscriminator(self.shape, self.d_width, self.d_norm, self.critic_head, self.levels)


@dataclass(frozen=True)
class VAEGANConfig(BaselineConfig):
    """3D-VAE-GAN: G (fully connected stem), D, VAE encoder E with heads of width ``vae_hidden`` (H)."""

    family: ClassVar[str] = "vae-gan"
    vae_hidden: int = 512

    def build_networks(self) -> dict[str, Any]:
        from medgan3d.networks.baselines import BaselineVAEEncoder

        E = BaselineVAEEncoder(self.shape, self.latent_dim, self.d_width, self.vae_hidden, self.levels)
        return super().build_networks() | {"E": E}


@dataclass(frozen=True)
class AlphaGANConfig(BaselineConfig):
    """3D-α-GAN: G (transposed-conv stem), D, deterministic encoder E, code discriminator CD of width
    ``code_hidden`` (U) with normalisation ``cd_norm``."""

    family: ClassVar[str] = "alpha-gan"
    stem: ClassVar[str] = "transposed"
    code_hidden: int = 512
    cd_norm: str = "batch"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cd_norm not in ("batch", "layer", "none"):
            raise ValueError(f"cd_norm {self.cd_norm!r} not in ('batch', 'layer', 'none')")

    def build_networks(self) -> dict[str, Any]:
        from medgan3d.networks.baselines import BaselineCodeDiscriminator, BaselineEncoder

        E = BaselineEncoder(self.shape, self.latent_dim, self.d_width, self.levels)
        CD = BaselineCodeDiscriminator(self.latent_dim, self.code_hidden, self.cd_norm)
        return super().build_networks() | {"E": E, "CD": CD}


@dataclass(frozen=True)
class AlphaWGANGPConfig(AlphaGANConfig):
    """3D-α-WGAN-GP: the α-GAN networks, trained with Wasserstein losses and gradient penalties."""

    family: ClassVar[str] = "alpha-wgan-gp"


MODEL_CONFIGS: dict[str, type] = {
    "stylegan2": ModelConfig,
    "hagan": HAGANConfig,
    **{cls.family: cls for cls in (WGANGPConfig, VAEGANConfig, AlphaGANConfig, AlphaWGANGPConfig)},
}


@dataclass(frozen=True)
class Preset:
    """A named, documented configuration."""

    name: str
    model: ModelConfig | HAGANConfig | BaselineConfig
    description: str = ""
    reference: str = ""
    paper_params_m: float | None = None  # G+D parameters the paper reports, in millions
    data_preset: str | None = None  # the preprocessing preset this architecture expects (data issue)
    extra: dict[str, Any] = field(default_factory=dict)  # sections owned by later subsystems (train, ...)

    def twin_2d(self) -> Preset:
        return dataclasses.replace(
            self, name=f"{self.name}-2d", model=self.model.twin_2d(), paper_params_m=None
        )


def _configs_dir() -> Path:
    return Path(str(resources.files("medgan3d") / "configs"))


def list_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.stem for p in _configs_dir().glob("*.yaml"))


def model_config_from_dict(
    data: dict[str, Any], source: str = "<dict>"
) -> ModelConfig | HAGANConfig | BaselineConfig:
    """A model config of the family named by ``family`` (default ``stylegan2``); unknown keys are refused."""
    data = dict(data)
    family = data.pop("family", "stylegan2")
    if family not in MODEL_CONFIGS:
        raise ValueError(f"{source}: unknown model family {family!r}; known: {sorted(MODEL_CONFIGS)}")
    cls = MODEL_CONFIGS[family]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(
            f"{source}: unknown model keys {sorted(unknown)} for family {family}; known: {sorted(known)}"
        )
    return cls(**data)  # type: ignore[no-any-return]


def preset_from_dict(data: dict[str, Any], source: str = "<dict>") -> Preset:
    """Build a :class:`Preset` from parsed YAML, naming ``source`` in errors."""
    if not isinstance(data, dict) or "model" not in data:
        raise ValueError(f"{source}: a preset needs a 'model' section")
    data = dict(data)
    model = model_config_from_dict(dict(data.pop("model")), source)
    known = {f.name for f in dataclasses.fields(Preset)} - {"model", "extra"}
    extra = {k: data.pop(k) for k in list(data) if k not in known}
    return Preset(model=model, extra=extra, **data)


def load_preset(name_or_path: str | Path) -> Preset:
    """Load a preset by name (``coca-ss``; ``coca-ss-2d`` for its 2D twin) or from a YAML file path."""
    text_name = str(name_or_path)
    twin = text_name.endswith("-2d") and not text_name.endswith((".yaml", ".yml"))
    base_name = text_name[:-3] if twin else text_name
    path = Path(base_name)
    if not path.suffix:
        path = _configs_dir() / f"{base_name}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown preset {text_name!r}; available: {', '.join(list_presets())}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: preset file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML ({exc})") from exc
    preset = preset_from_dict(data, str(path))
    return preset.twin_2d() if twin else preset


def preset_to_yaml(preset: Preset) -> str:
    """YAML text of a preset (round-trips through :func:`preset_from_dict`)."""
    model = preset.model.to_dict()
    data: dict[str, Any] = {
        "name": preset.name,
        "description": preset.description,
        "reference": preset.reference,
    }
    if preset.paper_params_m is not None:
        data["paper_params_m"] = preset.paper_params_m
    if preset.data_preset is not None:
        data["data_preset"] = preset.data_preset
    data["model"] = model
    data.update(preset.extra)
    return yaml.safe_dump(data, sort_keys=False)
