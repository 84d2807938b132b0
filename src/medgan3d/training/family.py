"""What a model family gives the shared training loop, and the loop's side of the contract.

The loop (:mod:`medgan3d.training.loop`) owns the device and DDP, micro-batching with per-micro-batch seeding,
gradient averaging over ranks, the non-finite guard, ticks, snapshots, metrics, checkpoints and resume. A
*family* owns everything that differs between GANs:

* its networks and optimizers (:meth:`Family.build`): ``Networks.modules`` is what a checkpoint holds,
  ``Networks.optimizers`` maps the name of each trained module to its optimizer;
* the phases of one iteration (:meth:`Family.phases`): which module(s) each phase steps;
* one loss function per phase (:meth:`Family.loss`), called once per micro-batch with the RNG already
  seeded, returning a :class:`PhaseResult`;
* what happens around the steps (:meth:`Family.begin_iteration`, :meth:`Family.after_phase`,
  :meth:`Family.end_iteration`): e.g. StyleGAN2's ``w_avg``/``pl_mean`` updates and EMA, HA-GAN's crop;
* which network samples (:attr:`Family.sample_from`, through :func:`medgan3d.sampling.sample`), for
  snapshots, metrics and generate.

Families register themselves in :data:`FAMILIES` by name; a model config names its family in
``ModelConfig.family`` so that a new family never needs to touch the loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # the loop imports this module
    from medgan3d.config import TrainConfig
    from medgan3d.training.loop import TrainState

ModelT = TypeVar("ModelT")  # a family's model config (ModelConfig, HAGANConfig, ...)
LossT = TypeVar("LossT")  # a family's objective settings, the class of TrainConfig.loss


@dataclass(frozen=True)
class Phase:
    """One optimisation step of an iteration: its name, its seeding index and the modules it steps."""

    name: str
    index: int  # stable per family (seeds the phase's micro-batches); at most 7
    trains: tuple[str, ...]  # keys of Networks.optimizers (each optimizer steps the module of that name)


@dataclass
class PhaseResult:
    """One micro-batch's contribution: its loss (already divided by the number of micro-batches), scalar
    stats (averaged over micro-batches by the loop), and ``side`` tensors that the loop averages over
    micro-batches and ranks and hands to :meth:`Family.after_phase`.

    Stats are detached 0-dim tensors (or floats): the loop reads them on the host once per tick, never per
    iteration. ``loss`` may be only the last part of the micro-batch's loss if the loss function ran
    ``backward()`` on the other parts itself (to free a graph early); the loop sums the parts' gradients
    exactly as one backward of their sum would."""

    loss: Tensor
    stats: Mapping[str, Tensor | float]
    side: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class MicroBatch:
    """What a loss function gets besides the networks: its share of the global batch."""

    size: int  # samples in this micro-batch
    rounds: int  # micro-batches per rank in this phase (divide losses by it)
    device: torch.device
    autocast: AbstractContextManager
    reals: Callable[[], Tensor]  # loads this micro-batch's real items (call it at most once)
    step: int  # iteration index (batch_idx)
    context: Any  # what Family.begin_iteration returned for this iteration
    # label vectors [size, c_dim] of the same real items as ``reals`` (conditional models; no RNG is drawn)
    labels: Callable[[], Tensor] | None = None


@dataclass
class Networks:
    modules: dict[str, nn.Module]  # everything a checkpoint holds, by name
    optimizers: Mapping[str, torch.optim.Optimizer]  # trained module name -> its optimizer


class Family(Generic[ModelT, LossT]):
    """Base class of model families, typed by their model config and objective settings; see the module
    docstring for the contract."""

    name: ClassVar[str]
    phase_names: ClassVar[tuple[str, ...]]
    loss_cls: ClassVar[type]  # dataclass of the family's objective settings (TrainConfig.loss)
    sample_from: ClassVar[str]  # module that generates volumes for snapshots, metrics and generate
    # modules (``name`` or ``name.submodule``) whose forwards see images: the augmentation acts on their first
    # argument; the family reports mean(sign(D(real))) as ``side[augment.REAL_SIGN]`` from its D phase
    augmented: ClassVar[tuple[str, ...]] = ("D",)

    def build(
        self,
        model: ModelT,
        cfg: TrainConfig,
        device: torch.device,
        from_inflated: bool,
        init: dict[str, nn.Module] | None,
    ) -> Networks:
        raise NotImplementedError

    def phases(self, step: int, cfg: TrainConfig) -> list[Phase]:
        raise NotImplementedError

    def loss(
        self, phase: Phase, nets: Networks, mb: MicroBatch, state: TrainState, cfg: TrainConfig
    ) -> PhaseResult:
        raise NotImplementedError

    def begin_iteration(self, step: int, nets: Networks, cfg: TrainConfig) -> Any:
        """Per-iteration randomness shared by every phase and micro-batch (a pure function of the step)."""
        return None

    def before_phase(self, phase: Phase, nets: Networks) -> None:
        """Called once per phase before its micro-batches."""

    def after_phase(
        self,
        phase: Phase,
        nets: Networks,
        side: dict[str, Tensor],
        state: TrainState,
        cfg: TrainConfig,
        finite: Tensor,
    ) -> None:
        """Called once per phase after its (guarded) step, with ``side`` averaged over micro-batches and
        ranks. ``finite`` is the device flag of the step: updates here must leave everything as it was when
        it is false (``torch.where``; :func:`medgan3d.training.optim.guarded_step` for extra optimizer
        steps), without reading it on the host."""

    def end_iteration(self, nets: Networks, state: TrainState, cfg: TrainConfig) -> None:
        """Called after every iteration, once the image counter has advanced (e.g. EMA)."""

    def initial_extra_state(self) -> dict[str, float]:
        """Family scalars kept in the training state (checkpointed, logged per tick); the family may
        replace them by 0-dim device tensors during the run (read at ticks and checkpoints)."""
        return {}

    def augmented_modules(self, nets: Networks) -> list[nn.Module]:
        """The modules named by :attr:`augmented`."""
        out = []
        for path in self.augmented:
            root, _, rest = path.partition(".")
            out.append(nets.modules[root].get_submodule(rest) if rest else nets.modules[root])
        return out

    def phase(self, name: str, trains: tuple[str, ...]) -> Phase:
        return Phase(name, self.phase_names.index(name), trains)

    def objective(self, cfg: TrainConfig) -> LossT:
        """``cfg.loss``, the settings of this family's objective (the loop resolves them before any family
        method sees ``cfg``)."""
        if not isinstance(cfg.loss, self.loss_cls):
            raise TypeError(
                f"{self.name}: train.loss is a {type(cfg.loss).__name__}, not {self.loss_cls.__name__}"
            )
        return cast(LossT, cfg.loss)


FAMILIES: dict[str, Callable[[], Family[Any, Any]]] = {}


def register(cls: type[Family[Any, Any]]) -> type[Family[Any, Any]]:
    FAMILIES[cls.name] = cls
    return cls


def family_for(model: object) -> Family[Any, Any]:
    """The family of a model config (its ``family`` attribute, ``stylegan2`` when absent)."""
    import medgan3d.training.families  # noqa: F401  (registers the shipped families)

    name = getattr(model, "family", "stylegan2")
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]()
