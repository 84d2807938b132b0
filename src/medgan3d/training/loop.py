"""One explicit training loop for every model family, 2D (slices) and 3D (volumes).

Per iteration the family's phases (StyleGAN2: Gmain, Greg every ``pl_interval``, Dmain, Dreg every
``r1_interval``; HA-GAN: D, G, E^H, E^G) each accumulate gradients over micro-batches, average them over ranks
and take one optimizer step of the module(s) they train; then the family finishes the iteration (e.g. the
EMA of G). Every micro-batch draws its randomness from a seed derived from (run seed, iteration, phase, global
micro-batch index), so for a given micro-batch size (``batch_gpu``) the result does not depend on how the
micro-batches are spread over processes and gradient-accumulation rounds (up to float summation order), and a
resumed run continues bit-identically on CPU. What a family provides is described in
:mod:`medgan3d.training.family`; the loop never names a network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from medgan3d.config import (
    MetricsConfig,
    ModelSettings,
    TrainConfig,
    model_config_from_dict,
    resolve_loss,
    train_config_from_dict,
)
from medgan3d.data import SliceDataset, VolumeDataset
from medgan3d.data.labels import LabelSpec, spec_of
from medgan3d.data.manifest import MANIFEST_NAME, Manifest
from medgan3d.errors import MedganError, UsageError, check_batch_fits_model
from medgan3d.sampling import sample
from medgan3d.training import checkpoint as ckpt
from medgan3d.training import runfolder
from medgan3d.training.augment import REAL_SIGN, AugmentPipe, make_pipe
from medgan3d.training.family import Family, MicroBatch, Networks, Phase, family_for
from medgan3d.training.observe import RunLogger, new_run_dir, save_grid
from medgan3d.training.optim import guarded_step
from medgan3d.viz import IntensityWindow

if TYPE_CHECKING:
    from medgan3d.config import BaselineConfig, HAGANConfig, ModelConfig

    ModelSpec = ModelConfig | HAGANConfig | BaselineConfig  # a model config of any family


class TrainingError(MedganError, RuntimeError):
    """A run that cannot go on; the message says why and where the last good checkpoint is."""


class TrainingStopped(MedganError):
    """The run stopped on SIGINT/SIGTERM after writing a checkpoint; it is incomplete and can be resumed.

    Exits with 128 + the signal number (130 for Ctrl-C, 143 for a scheduler's SIGTERM), never 0."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


def resolve_precision(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """``bf16`` left at None becomes bf16 autocast on CUDA and fp32 elsewhere; config.yaml records the result,
    so a resumed run keeps its precision (bf16 tracks fp32: tests/training/test_loop_memory.py)."""
    return cfg if cfg.bf16 is not None else dataclasses.replace(cfg, bf16=device.type == "cuda")


# --------------------------------------------------------------------------------------------------
# Distributed helpers (torchrun: gloo on CPU, nccl on GPU)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this process joined the group in setup_distributed and leaves it after the run

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str | None = None) -> Dist:
    """Join the torchrun process group when ``WORLD_SIZE > 1``; pick the device for this rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    dev = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True  # shapes are fixed for a whole run: autotune each conv once
    owns_group = world > 1 and not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if not use_cuda and "OMP_NUM_THREADS" not in os.environ:  # share the cores among local processes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // world))
    return Dist(rank, world, dev, owns_group)


def teardown_distributed(d: Dist, finished: bool) -> None:
    """Leave the process group this run joined. A group left to the interpreter's exit lets a rank abort
    ("terminate called without an active exception") while gloo's threads are torn down; after a run that
    finished, a barrier first keeps one rank from closing connections another still reads."""
    if not (d.owns_group and dist.is_initialized()):
        return
    if finished:
        dist.barrier()
    dist.destroy_process_group()


def all_reduce_mean(t: Tensor, d: Dist) -> Tensor:
    if d.world > 1:
        dist.all_reduce(t)
        t /= d.world
    return t


# --------------------------------------------------------------------------------------------------
# Pieces of the loop
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, n: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def sample_indices(position: int, count: int, n: int, seed: int) -> list[int]:
    """Indices ``position .. position+count`` of an endless stream of seeded per-epoch permutations."""
    return [_epoch_permutation(seed, p // n, n)[p % n] for p in range(position, position + count)]


def seed_micro(seed: int, step: int, phase: int, micro: int) -> None:
    """Seed torch's RNG for one micro-batch of one phase of one iteration."""
    torch.manual_seed(((seed * 1_000_003 + step) * 8 + phase) * 65_537 + micro)


def reduce_grads(module: nn.Module, d: Dist) -> Tensor:
    """Average gradients over ranks (one all-reduce of a flat copy; none in one process) and return a 0-dim
    device bool: all of them finite (the same answer on every rank). Nothing is read on the host."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if d.world > 1:
        params = list(module.parameters())
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
        all_reduce_mean(flat, d)
        pieces = zip(flat.split([p.numel() for p in params]), params, strict=True)
        torch._foreach_copy_(grads, [v.view_as(p) for v, p in pieces if p.grad is not None])
        return torch.isfinite(flat).all()
    found = torch.zeros((), device=d.device)
    if grads:  # one fused pass over every gradient (mixed precision's check; ×1 leaves them bit-identical)
        torch._amp_foreach_non_finite_check_and_unscale_(grads, found, torch.ones((), device=d.device))
    return found == 0


@dataclass
class TrainState:
    """Everything besides weights and optimizer moments that a resumed run needs."""

    cur_nimg: int = 0
    batch_idx: int = 0
    tick: int = 0
    tick_start_nimg: int = 0
    bad_consecutive: int = 0
    bad_total: int = 0
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # family scalars (pl_mean): floats or 0-dim tensors

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        data = dict(data)
        extra = dict(data.pop("extra", {}))
        if "pl_mean" in data:  # checkpoints written before the loop became family-generic
            extra["pl_mean"] = data.pop("pl_mean")
        return cls(**data, extra=extra)


def build_networks(
    family: Family,
    model: ModelSpec,
    cfg: TrainConfig,
    device: torch.device,
    from_inflated: bool,
    init: dict[str, nn.Module] | None = None,
) -> Networks:
    """The family's networks and optimizers; ``init`` (e.g. inflated weights) overrides the random init."""
    return family.build(model, cfg, device, from_inflated, init)


def broadcast_networks(nets: Networks, d: Dist) -> None:
    """Make every rank start from rank 0's weights."""
    if d.world > 1:
        for module in nets.modules.values():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)


class RealBatches:
    """Loads this rank's micro-batches of the global batch from a prepared dataset (memory-mapped); with a
    label spec (a conditional model) also the label vectors of the same items."""

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        cfg: TrainConfig,
        d: Dist,
        rounds: int,
        spec: LabelSpec | None = None,
    ) -> None:
        self.dataset, self.cfg, self.d, self.rounds, self.spec = dataset, cfg, d, rounds, spec
        self.n = len(dataset)  # type: ignore[arg-type]  # a map-style Dataset; torch's type has no __len__

    def _indices(self, position: int, r: int) -> list[int]:
        bg = self.cfg.batch_gpu
        start = position + (self.d.rank * self.rounds + r) * bg
        return sample_indices(start, bg, self.n, self.cfg.seed)

    def micro(self, position: int, r: int) -> Tensor:
        """Micro-batch ``r`` of this rank, for the global batch starting at sample ``position``."""
        batch = torch.stack([self.dataset[i] for i in self._indices(position, r)])
        if self.d.device.type != "cuda":
            return batch.to(self.d.device)
        return batch.pin_memory().to(self.d.device, non_blocking=True)  # the host does not wait for the copy

    def labels(self, position: int, r: int) -> Tensor:
        """The label vectors ``[batch_gpu, c_dim]`` of :meth:`micro`'s items."""
        assert self.spec is not None
        labels = [self.dataset.label(i) for i in self._indices(position, r)]  # type: ignore[attr-defined]  # a labelled VolumeDataset
        return self.spec.encode(labels).to(self.d.device)


# --------------------------------------------------------------------------------------------------
# One iteration
# --------------------------------------------------------------------------------------------------


def _set_trainable(nets: Networks, trains: tuple[str, ...]) -> None:
    for name in nets.optimizers:
        nets.modules[name].requires_grad_(name in trains)


Stat = Tensor | float  # a device tensor until the tick reads the iteration's stats (once per tick)


def _stat(value: Tensor | float, rounds: int) -> Stat:
    """One micro-batch's share of a stat: float64 on the device, so that summing the micro-batches there
    gives the same number as summing the Python floats of ``.item()`` would."""
    if isinstance(value, Tensor):
        return value.detach().to(torch.float64) / rounds
    return float(value) / rounds


def run_phase(
    family: Family,
    phase: Phase,
    nets: Networks,
    reals: RealBatches,
    state: TrainState,
    cfg: TrainConfig,
    d: Dist,
    rounds: int,
    context: Any = None,
    augment: AugmentPipe | None = None,
) -> dict[str, Stat]:
    """Accumulate one phase over this rank's micro-batches, average over ranks, step (if finite); a finite
    phase that reports the signs of D's real logits feeds the adaptive augmentation.

    Nothing is read on the host: the stats stay device tensors, and whether the gradients are finite is a
    device flag that :func:`~medgan3d.training.optim.guarded_step` and the family's ``after_phase`` obey;
    it is returned as the stat ``skipped_nonfinite`` (1.0 where the step was skipped)."""
    _set_trainable(nets, phase.trains)
    for name in phase.trains:
        nets.optimizers[name].zero_grad(set_to_none=True)
    autocast = torch.autocast(d.device.type, dtype=torch.bfloat16) if cfg.bf16 else contextlib.nullcontext()
    family.before_phase(phase, nets)
    stats: dict[str, Stat] = {}
    side: dict[str, Tensor] = {}
    params = [p for name in phase.trains for p in nets.modules[name].parameters()]
    for r in range(rounds):
        seed_micro(cfg.seed, state.batch_idx, phase.index, d.rank * rounds + r)
        spec = getattr(reals, "spec", None)  # test doubles of RealBatches need not have one
        labels = functools.partial(reals.labels, state.cur_nimg, r) if spec is not None else None
        mb = MicroBatch(
            cfg.batch_gpu,
            rounds,
            d.device,
            autocast,
            functools.partial(reals.micro, state.cur_nimg, r),
            state.batch_idx,
            context,
            labels,
        )
        with accumulated_grads(params):
            result = family.loss(phase, nets, mb, state, cfg)
            result.loss.backward()
        for k, v in result.stats.items():
            share = _stat(v, rounds)
            stats[k] = stats[k] + share if k in stats else share
        for k, t in result.side.items():
            side[k] = (side[k] if k in side else torch.zeros_like(t)) + t / rounds
    flags = [reduce_grads(nets.modules[name], d) for name in phase.trains]
    finite = functools.reduce(torch.logical_and, flags)
    for name in phase.trains:
        guarded_step(nets.optimizers[name], finite)
    for t in side.values():
        all_reduce_mean(t, d)
    if augment is not None and REAL_SIGN in side:
        augment.accumulate(side[REAL_SIGN], finite)
    family.after_phase(phase, nets, side, state, cfg, finite)
    stats["skipped_nonfinite"] = (~finite).to(torch.float64)
    _set_trainable(nets, ())
    return stats


@contextlib.contextmanager
def accumulated_grads(params: Sequence[Tensor]) -> Iterator[None]:
    """Gradients of the backward passes inside are added to the ones before as ONE sum per micro-batch.

    A loss function may backpropagate parts of its loss itself (StyleGAN2's Dmain runs D(fake)'s backward
    before D(real)'s forward, so only one graph is alive); summed into ``.grad`` one by one the parts would
    round differently from one backward of their sum. Setting the earlier gradients aside and adding them
    back afterwards gives ``earlier + (part₁ + part₂)``, bit-identical to the single backward."""
    earlier = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        yield
    finally:
        pending = []
        for e, p in zip(earlier, params, strict=True):
            if e is not None and p.grad is None:
                p.grad = e
            elif e is not None:
                pending.append((e, p))
        if pending:  # e += g as AccumulateGrad does, as one foreach op
            torch._foreach_add_(
                [e for e, _ in pending], [cast(Tensor, p.grad) for _, p in pending]
            )  # set: backward ran
            for e, p in pending:
                p.grad = e


def train_step(
    family: Family,
    nets: Networks,
    reals: RealBatches,
    state: TrainState,
    cfg: TrainConfig,
    d: Dist,
    rounds: int,
    augment: AugmentPipe | None = None,
) -> dict[str, Stat]:
    """One iteration (all phases of the family) + its end-of-iteration update (and the adjustment of the
    adaptive augmentation's p); advances the image counter.

    Returns the iteration's stats as device tensors, with the non-finite flag of every phase under
    ``skipped/<phase>``; :func:`settle_rows` reads them at the tick and applies the streak rule."""
    stats: dict[str, Stat] = {}
    flags: dict[str, Stat] = {}
    context = family.begin_iteration(state.batch_idx, nets, cfg)
    for phase in family.phases(state.batch_idx, cfg):
        phase_stats = run_phase(family, phase, nets, reals, state, cfg, d, rounds, context, augment)
        flags[f"{SKIPPED}{phase.name}"] = phase_stats.pop("skipped_nonfinite")
        stats |= phase_stats
    stats |= flags
    stats[KIMG] = state.cur_nimg / 1000
    if augment is not None:
        augment.end_iteration(state.batch_idx, cfg.batch)
    state.cur_nimg += cfg.batch
    state.batch_idx += 1
    family.end_iteration(nets, state, cfg)
    return stats


SKIPPED, KIMG = "skipped/", "_kimg"  # keys of train_step's rows that settle_rows consumes


def settle_rows(rows: list[dict[str, Stat]], state: TrainState, cfg: TrainConfig) -> list[dict[str, float]]:
    """The rows of a tick as floats (one device read for all of them), with the skip counters applied
    iteration by iteration: a phase whose step was skipped counts in ``bad_total`` and ``skipped_phases``;
    more than ``max_bad_steps`` iterations in a row with one stop the run (:class:`TrainingError`)."""
    tensors = [v for row in rows for v in row.values() if isinstance(v, Tensor)]
    values = iter(torch.stack(tensors).tolist() if tensors else [])
    out = []
    for row in rows:
        plain = {k: next(values) if isinstance(v, Tensor) else v for k, v in row.items()}
        kimg = plain.pop(KIMG, state.cur_nimg / 1000)
        skipped = [k[len(SKIPPED) :] for k in list(plain) if k.startswith(SKIPPED) and plain.pop(k)]
        state.bad_total += len(skipped)
        state.bad_consecutive = state.bad_consecutive + 1 if skipped else 0
        if state.bad_consecutive > cfg.max_bad_steps:
            raise TrainingError(
                f"{state.bad_consecutive} iterations in a row had non-finite losses or gradients "
                f"(last: {', '.join(skipped)} at kimg {kimg:.2f}); stopping"
            )
        plain["skipped_phases"] = float(len(skipped))
        out.append(plain)
    return out


# --------------------------------------------------------------------------------------------------
# Graceful interruption
# --------------------------------------------------------------------------------------------------


class StopFlag:
    """Ctrl-C (SIGINT) or SIGTERM finish the current iteration, write a checkpoint and stop."""

    def __init__(self) -> None:
        self.requested = False
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # a second signal aborts at once, with that signal's exit code
            raise SystemExit(128 + signum)
        self.requested, self.signum = True, signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def host_extra(state: TrainState) -> dict[str, float]:
    """The family's scalars as Python floats (a family may keep them as device tensors between ticks)."""
    return {k: float(v) for k, v in state.extra.items()}


def mean_stats(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r})
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}


def rounds_for(cfg: TrainConfig, d: Dist) -> int:
    per_rank, rem = divmod(cfg.batch, d.world)
    rounds, rem2 = divmod(per_rank, cfg.batch_gpu) if not rem else (0, 1)
    if rem or rem2 or rounds < 1:
        raise ValueError(
            f"batch {cfg.batch} must be a multiple of batch_gpu {cfg.batch_gpu} × processes {d.world}"
        )
    return rounds


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def open_dataset(data: str | Path, model: ModelSpec, flip: bool) -> VolumeDataset | SliceDataset:
    """Volumes for a 3D model, axial slices for a 2D twin; refuses a shape the model does not generate."""
    dataset = (VolumeDataset if model.spatial_dims == 3 else SliceDataset)(data, split="train", flip=flip)
    if len(dataset) == 0:
        raise ValueError(f"{data}: the train split is empty")
    shape = tuple(dataset[0].shape)
    if shape != model.output_shape:
        raise ValueError(
            f"{data}: items are {list(shape)} but the model generates {list(model.output_shape)}; "
            f"prepare the data for this preset (medgan3d prepare ... --config PRESET, or --shape) or pick another preset"
            f"{_blocks_hint(shape[1:], model)}"
        )
    return dataset


def label_spec_of(model: ModelSettings) -> LabelSpec | None:
    """What a model config conditions on (None: an unconditional model)."""
    labels = getattr(model, "labels", None)
    return LabelSpec.from_dict(labels) if labels else None


def conditioned(
    model: ModelSettings, manifest: Manifest, cond: bool, data: Path, inflated: bool = False
) -> ModelSettings:
    """The model config to train on a dataset: conditional on its labels when it has some and ``cond``
    (3D models of families that support it), else as given. Refuses a mismatch with one clear line."""
    spec = spec_of(manifest)
    wanted = label_spec_of(model)
    if wanted is not None:
        if spec is None or spec != wanted:
            have = "no labels" if spec is None else f"labels {spec.to_dict()}"
            raise UsageError(
                f"{data}: the model is conditioned on {wanted.to_dict()} but the dataset has {have}"
            )
        return model
    if spec is None or not cond or model.spatial_dims != 3:
        return model
    if not any(f.name == "labels" for f in dataclasses.fields(model)):
        raise UsageError(
            f"{data} is labelled, but {getattr(model, 'family', 'this')} models are unconditional in "
            "medgan3d (conditioning is for the StyleGAN2 family and HA-GAN); train with --no-cond"
        )
    if spec.kind == "value" and getattr(model, "family", "") == "hagan":
        raise UsageError(
            f"{data} has float labels; HA-GAN's conditional variant classifies integer classes "
            "(prepare --label-kind class, a StyleGAN2 preset, or --no-cond)"
        )
    if inflated:
        raise UsageError(
            f"{data} is labelled: inflating an unconditional 2D twin into a conditional model is not "
            "supported; train with --no-cond"
        )
    # a family with a labels field (checked above): mypy cannot see that in the union
    return dataclasses.replace(cast(Any, model), labels=spec.to_dict())


def _blocks_hint(shape: tuple[int, ...], model: ModelSpec) -> str:
    """For a StyleGAN2 model: the number of blocks that fits the data, or the nearest shape its base makes."""
    base = getattr(model, "base_shape", None)
    if base is None or len(base) != len(shape):
        return ""
    from medgan3d.networks.stylegan import nearest_generator_shape

    nearest, k = nearest_generator_shape(shape, base)
    if nearest == tuple(shape):
        return f" (or num_blocks {k + 1}: base {list(base)} · 2^{k} is the data's shape)"
    return (
        f"; the shape nearest the data that base {list(base)} makes is {list(nearest)} (num_blocks {k + 1})"
    )


def _resume_run_dir(resume: str | Path) -> Path:
    if not Path(resume).exists():
        raise FileNotFoundError(f"{resume}: no such run or checkpoint")
    run_dir = ckpt.run_dir_of(resume)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml, not a medgan3d run folder")
    return run_dir


def _write_run_files(run_dir: Path, config: dict[str, Any], data: Path) -> None:
    import yaml

    from medgan3d.fs import atomic_write

    text = yaml.safe_dump(config, sort_keys=False)
    atomic_write(run_dir / "config.yaml", lambda p: p.write_text(text, encoding="utf-8"))
    manifest = data / MANIFEST_NAME
    if manifest.is_file():  # generate maps intensities back and writes the data's spacing from it
        atomic_write(run_dir / MANIFEST_NAME, lambda p: p.write_bytes(manifest.read_bytes()))


def _stop_requested(flag: StopFlag, d: Dist) -> bool:
    """Whether any rank got a stop signal; one all-reduce (and host read) per iteration only under DDP."""
    if d.world == 1:
        return flag.requested
    t = torch.tensor([1.0 if flag.requested else 0.0], device=d.device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def _judged_by(cfg: TrainConfig) -> list[str]:
    """The scalar tags a run's hparams name as its metrics: the losses and, with ``cfg.metrics``, the scores."""
    from medgan3d.metrics import scalar_keys

    return ["loss/G", "loss/D", *(f"metrics/{k}" for k in scalar_keys(cfg.metrics))]


def snapshot_labels(spec: LabelSpec | None, n: int) -> tuple[Tensor | None, list[str]]:
    """Label vectors for the snapshot grid of a conditional model (seed i: the i-th class, cycling; a value
    model: the training labels' range in n steps) and each cell's caption suffix."""
    if spec is None:
        return None, [""] * n
    values = spec.grid(n)
    return spec.encode(values), [f" · label {v:g}" for v in values]


def _observe(
    family: Family,
    nets: Networks,
    state: TrainState,
    cfg: TrainConfig,
    run_dir: Path,
    record: dict[str, Any],
    logger: RunLogger,
    manifest: Manifest,
    spec: LabelSpec | None = None,
) -> None:
    """The snapshot's PNG grid and (with ``cfg.metrics``) scores into ``record`` and metrics.jsonl."""
    kimg = state.cur_nimg / 1000
    G = nets.modules[family.sample_from]
    c, names = snapshot_labels(spec, cfg.grid)
    png = save_grid(
        sample(G, range(cfg.grid), c=c)[:, 0].numpy(),
        run_dir / f"fakes{state.cur_nimg:09d}.png",
        manifest.spacing,
        title=f"generated ({family.sample_from}), kimg {kimg:g}",
        window=IntensityWindow.of_manifest(manifest),
        labels=[f"seed {i}{names[i]}" for i in range(cfg.grid)],
    )
    logger.image("fakes", png, kimg)
    if cfg.metrics:
        from medgan3d.metrics import evaluate_generator, scalars

        device = str(next(G.parameters()).device)
        settings = dataclasses.replace(
            cfg.metrics_settings or MetricsConfig(), metrics=cfg.metrics, seed=cfg.seed, device=device
        )
        result = evaluate_generator(
            G, manifest, num_samples=cfg.metrics_samples, settings=settings, spec=spec
        )
        record |= {f"metrics/{k}": v for k, v in scalars(result).items()}
        # the full result (extractor, weights, sample counts, ...) beside the scalars in stats.jsonl
        with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"kimg": kimg} | result, default=str) + "\n")


def _save(
    nets: Networks,
    state: TrainState,
    cfg: TrainConfig,
    run_dir: Path,
    config: dict[str, Any],
    augment: AugmentPipe | None = None,
) -> Path:
    """A checkpoint of the current state; pruning keeps the last ``keep_last``. Every checkpoint the loop
    writes was written with no bad streak (``_tick``), so the newest one is always the last good one."""
    saved = dataclasses.replace(state, extra=host_extra(state))
    payload = {"state": dataclasses.asdict(saved), "config": config}
    tensors = {"rng.torch": torch.get_rng_state()} | (
        {k: v.cpu() for k, v in augment.state().items()} if augment is not None else {}
    )
    return ckpt.save_checkpoint(
        run_dir, state.cur_nimg, nets.modules, nets.optimizers, payload, tensors, cfg.keep_last
    )


@dataclass
class Run:
    """What the loop works on once a run is set up (rank 0 also has its folder, logger and lock)."""

    family: Family
    nets: Networks
    reals: RealBatches
    state: TrainState
    cfg: TrainConfig
    d: Dist
    rounds: int
    run_dir: Path | None
    logger: RunLogger
    manifest: Manifest  # the training data's (spacing and intensity window of the snapshot grids, scores)
    config: dict[str, Any]
    last_good: Path | None  # newest checkpoint written with no bad streak (never pruned, named on failure)
    augment: AugmentPipe | None = None  # what D sees passes through it (cfg.aug); its state is checkpointed


def train(
    data: str | Path,
    model: ModelSpec,
    cfg: TrainConfig,
    outdir: str | Path = "runs",
    desc: str | None = None,
    resume: str | Path | None = None,
    init: dict[str, nn.Module] | None = None,
    init_info: dict[str, Any] | None = None,
    preset: str = "",
    device: str | None = None,
) -> Path:
    """Train (or resume) a run; returns the run folder. See the module docstring for the phases.

    ``model`` is a model config of any family (``ModelConfig`` for StyleGAN2, ``HAGANConfig``, ...).
    ``init``: networks (e.g. ``G``, ``G_ema``, ``D``) whose weights replace the random init, e.g. inflated from
    a 2D checkpoint; ``init_info`` is recorded in config.yaml. On ``resume`` the run's own config.yaml is used
    and only ``cfg.kimg`` (the new total) is taken from the arguments; the newest intact checkpoint is loaded
    and stats.jsonl/metrics.jsonl are cut back to it. Rank 0 holds the run folder's lock throughout.
    Raises :class:`TrainingStopped` after a SIGINT/SIGTERM stop and :class:`TrainingError` when the
    non-finite guard gives up.
    """
    d = setup_distributed(device)
    finished = False
    try:
        run_dir = _train(d, Path(data), model, cfg, outdir, desc, resume, init, init_info, preset)
        finished = True
        return run_dir
    finally:
        teardown_distributed(d, finished)


def _train(
    d: Dist,
    data: Path,
    model: ModelSpec,
    cfg: TrainConfig,
    outdir: str | Path,
    desc: str | None,
    resume: str | Path | None,
    init: dict[str, nn.Module] | None,
    init_info: dict[str, Any] | None,
    preset: str,
) -> Path:
    import yaml

    run_dir = _resume_run_dir(resume) if resume is not None else None
    if run_dir is not None:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        source = str(run_dir / "config.yaml")
        model = model_config_from_dict(saved["model"], source)
        cfg = dataclasses.replace(train_config_from_dict(saved["train"], source, model), kimg=cfg.kimg)
        data, preset, init_info = Path(saved["data"]), saved.get("preset", ""), saved.get("init")
    family = family_for(model)
    cfg = resolve_loss(resolve_precision(cfg, d.device), family)
    check_batch_fits_model(model, cfg, d.world)
    if cfg.metrics and model.spatial_dims != 3:
        raise ValueError(
            "metrics at snapshots score 3D volumes; a 2D twin (pretraining) cannot take --metrics"
        )
    dataset = open_dataset(data, model, cfg.flip)
    if run_dir is None:
        model = conditioned(model, dataset.manifest, cfg.cond, data, init is not None)
    spec = label_spec_of(model)
    rounds = rounds_for(cfg, d)
    from_inflated = bool(init_info and init_info.get("strategy", "none") != "none")
    nets = build_networks(family, model, cfg, d.device, from_inflated, init)
    augment = make_pipe(cfg, model.spatial_dims, d.device)
    if augment is not None:
        augment.install(family.augmented_modules(nets))
    config = {
        "preset": preset,
        "data": str(data.resolve()),
        "world_size": d.world,
        "init": init_info,
        "model": model.to_dict(),
        "train": cfg.to_dict(),
    }
    with contextlib.ExitStack() as stack:
        if d.is_main:
            run_dir = run_dir or new_run_dir(outdir, desc or f"{preset or 'custom'}-{data.name}")
            stack.enter_context(runfolder.lock_run_dir(run_dir))
            runfolder.clean_stale_temps(run_dir)
        state, last_good = TrainState(extra=family.initial_extra_state()), None
        if resume is not None:
            ckpt_dir = ckpt.resolve_checkpoint(resume)
            saved_state, tensors = ckpt.load_checkpoint(ckpt_dir, nets.modules, nets.optimizers)
            state = TrainState.from_dict(saved_state["state"])
            torch.set_rng_state(tensors["rng.torch"])
            if augment is not None:
                augment.load_state(tensors)
            last_good = ckpt_dir if state.bad_consecutive == 0 else None
            if d.is_main:
                assert run_dir is not None
                runfolder.truncate_logs(run_dir, state.cur_nimg / 1000)
        else:
            broadcast_networks(nets, d)
        if d.is_main:
            assert run_dir is not None
            _write_run_files(run_dir, config, data)
            if resume is None:
                reals_grid = np.stack([dataset[i][0].numpy() for i in range(min(cfg.grid, len(dataset)))])
                save_grid(
                    reals_grid,
                    run_dir / "reals.png",
                    dataset.manifest.spacing,
                    title="real training items",
                    labels=[f"real {i}" for i in range(len(reals_grid))],
                    window=IntensityWindow.of_manifest(dataset.manifest),
                )
        logger = RunLogger(run_dir if d.is_main else None, cfg.kimg, state.cur_nimg / 1000)
        if d.is_main and resume is None:  # a resumed run's events keep the first session's
            assert run_dir is not None
            logger.image("reals", run_dir / "reals.png", 0.0)
            logger.hparams(config, _judged_by(cfg))
        run = Run(
            family,
            nets,
            RealBatches(dataset, cfg, d, rounds, spec),
            state,
            cfg,
            d,
            rounds,
            run_dir if d.is_main else None,
            logger,
            dataset.manifest,
            config,
            last_good,
            augment,
        )
        logger.print(
            f"run {run_dir} · {len(dataset)} training items · batch {cfg.batch} = {d.world} × {rounds} × "
            f"{cfg.batch_gpu} · {'bf16' if cfg.bf16 else 'fp32'} · {d.device}"
            f"{'' if augment is None else f' · aug {cfg.aug} ({cfg.aug_preset})'}"
        )
        try:
            _loop(run)
        finally:
            logger.close()
    return run_dir if run_dir is not None else Path(outdir)


def _loop(run: Run) -> None:
    """Iterations until ``cfg.kimg``; a tick every ``tick_kimg``, a snapshot every ``snapshot_ticks`` ticks.

    Between ticks nothing is read from the device (one process): the iterations' stats and non-finite flags
    are read, and the skip rule applied, once per tick (:func:`settle_rows`).

    The console's tick 0 is the first iteration of this session (its speed, the time left); stats rows are
    ticks 1, 2, ... (StyleGAN2-ADA's numbering, where tick 0 is the start)."""
    state, cfg, d, logger = run.state, run.cfg, run.d, run.logger
    total = int(cfg.kimg * 1000)
    rows: list[dict[str, Stat]] = []
    losses = ""
    tick_time = time.perf_counter()
    first = True
    try:
        with StopFlag() as stop:
            while state.cur_nimg < total:
                step_start = time.perf_counter()
                rows.append(
                    train_step(run.family, run.nets, run.reals, state, cfg, d, run.rounds, run.augment)
                )
                rows[-1]["sec_per_iter"] = time.perf_counter() - step_start
                stopping = _stop_requested(stop, d)
                done = state.cur_nimg >= total
                spk = (time.perf_counter() - tick_time) / max(
                    (state.cur_nimg - state.tick_start_nimg) / 1000, 1e-9
                )
                logger.step(state.cur_nimg / 1000, f"{spk:.1f} s/kimg{losses}")
                if first:  # tick 0: at once, not a tick (on CPU that can be an hour) later
                    _tick_zero(run, tick_time)
                    first = False
                if done or stopping or state.cur_nimg >= state.tick_start_nimg + cfg.tick_kimg * 1000:
                    record = _tick(run, rows, tick_time, snapshot=done or stopping)
                    rows, tick_time = [], time.perf_counter()
                    losses = "".join(f" · {k[5:]} {record[k]:.3f}" for k in LOSSES_SHOWN if k in record)
                if stopping:
                    raise _stopped(run, stop.signum)
            if state.bad_consecutive:  # the final state was not saved: not a completed run
                raise TrainingError(
                    f"the run reached kimg {state.cur_nimg / 1000:.3f} inside a streak of "
                    f"{state.bad_consecutive} non-finite iteration(s); its final state was not saved"
                )
    except TrainingError as exc:
        where = (
            f"last good checkpoint: {run.last_good}" if run.last_good else "no good checkpoint was written"
        )
        raise TrainingError(f"{exc}; {where}") from exc


LOSSES_SHOWN = ("loss/G", "loss/D")  # on the progress line, from the last tick


def _tick_zero(run: Run, start: float) -> None:
    """The console's tick 0 (a resumed run: its last tick) after this session's first iteration: its speed (waited for on CUDA, once, so it
    is the device's and not the launch queue's) and the time left at that speed."""
    if run.d.device.type == "cuda":
        torch.cuda.synchronize(run.d.device)
    state = run.state
    spk = (time.perf_counter() - start) / max((state.cur_nimg - state.tick_start_nimg) / 1000, 1e-9)
    run.logger.started(
        state.tick, state.cur_nimg / 1000, spk, state.tick_start_nimg / 1000 + run.cfg.tick_kimg
    )


def _tick(run: Run, rows: list[dict[str, Stat]], tick_time: float, snapshot: bool) -> dict[str, Any]:
    """One stats row (stats.jsonl, TensorBoard, console); on snapshot ticks the PNG grid, metrics and a
    checkpoint, in that order, so that a kill between them leaves rows that resume cuts back. No checkpoint
    is written during a streak of skipped (non-finite) iterations: resuming from it would stop at once.
    Returns the row."""
    state, cfg, logger = run.state, run.cfg, run.logger
    plain = settle_rows(rows, state, cfg)  # the tick's one read of the device; raises on a long bad streak
    now = time.perf_counter()
    kimg = state.cur_nimg / 1000
    state.elapsed_s += now - tick_time
    record: dict[str, Any] = (
        {
            "tick": state.tick + 1,
            "kimg": kimg,
            "sec_per_kimg": (now - tick_time) / ((state.cur_nimg - state.tick_start_nimg) / 1000),
            "skipped_total": state.bad_total,
        }
        | host_extra(state)
        | mean_stats(plain)
    )
    if run.augment is not None:
        record |= run.augment.log()
    state.tick += 1
    state.tick_start_nimg = state.cur_nimg
    snap = run.run_dir is not None and (snapshot or state.tick % cfg.snapshot_ticks == 0)
    if snap and state.bad_consecutive:
        logger.print(
            f"no checkpoint at kimg {kimg:.3f}: the last {state.bad_consecutive} iteration(s) had "
            f"non-finite steps; last good checkpoint: {run.last_good}"
        )
        snap = False
    if snap:
        assert run.run_dir is not None
        _observe(
            run.family,
            run.nets,
            state,
            cfg,
            run.run_dir,
            record,
            logger,
            run.manifest,
            run.reals.spec,
        )
    logger.tick(record)
    if snap:
        assert run.run_dir is not None
        run.last_good = _save(run.nets, state, cfg, run.run_dir, run.config, run.augment)
        logger.print(f"checkpoint {run.last_good}")
    return record


def _stopped(run: Run, signum: int) -> TrainingStopped:
    name = signal.Signals(signum).name if signum else "a stop request"
    saved = f"checkpoint {run.last_good}" if run.last_good else "no checkpoint"
    return TrainingStopped(
        f"stopped by {name} at kimg {run.state.cur_nimg / 1000:.3f} (incomplete; {saved}); "
        f"resume with: medgan3d train --resume {run.run_dir} --kimg {run.cfg.kimg:g}",
        signum or signal.SIGTERM,
    )
