"""The StyleGAN2 family on the shared loop: G, D, G_ema with phases Gmain, Greg, Dmain, Dreg.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020), §2–4 and App. B, as used by
Liu et al., "3D Split&Shuffle-GAN" (arXiv 2208.03934, §4.2.3): lazy R1 every ``r1_interval`` D steps, path
length every ``pl_interval`` G steps (Adam lr·r and betas**r, r = k/(k+1)), ``w_avg`` tracked from Dmain's
mapping outputs, ``pl_mean`` from Greg's lengths, and an EMA of G with ramp-up after every iteration.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn

from medgan3d.networks import Generator
from medgan3d.training import losses
from medgan3d.training.family import Family, MicroBatch, Networks, Phase, PhaseResult, register
from medgan3d.training.losses import LossConfig
from medgan3d.training.optim import adam

if TYPE_CHECKING:
    from medgan3d.config import ModelConfig, TrainConfig
    from medgan3d.networks import Discriminator
    from medgan3d.training.loop import TrainState

DEFAULT_BETAS = (0.0, 0.99)


def make_optimizer(
    module: nn.Module, lr: float, betas: tuple[float, float], eps: float, interval: int
) -> torch.optim.Adam:
    """Adam with the lazy-regularisation correction: lr·r and betas**r, r = k/(k+1) (StyleGAN2)."""
    r = interval / (interval + 1)
    device = next(module.parameters()).device
    return adam(module.parameters(), device, lr=lr * r, betas=(betas[0] ** r, betas[1] ** r), eps=eps)


def ema_beta(cfg: TrainConfig, cur_nimg: int) -> float:
    """β = 0.5^(batch / ema_nimg), ema_nimg ramped up to ``ema_rampup`` of the images seen (StyleGAN2)."""
    ema_nimg = (cfg.ema_kimg if cfg.ema_kimg is not None else cfg.batch * 10 / 32) * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * cfg.ema_rampup)
    return 0.5 ** (cfg.batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: Generator, G: Generator, beta: float) -> None:
    """G_ema ← lerp(G, G_ema, β); buffers (w_avg, constant noise) are copied. Foreach ops: a few kernels
    for all tensors, with the same values as one ``lerp`` per tensor."""
    ema: list[Tensor] = list(G_ema.parameters())
    params = [p.detach() for p in G.parameters()]
    torch._foreach_copy_(ema, torch._foreach_lerp(params, ema, beta))
    torch._foreach_copy_(list(G_ema.buffers()), list(G.buffers()))


@register
class StyleGAN2(Family["ModelConfig", LossConfig]):
    name = "stylegan2"
    phase_names = ("Gmain", "Greg", "Dmain", "Dreg")
    loss_cls = LossConfig
    sample_from = "G_ema"

    def build(
        self,
        model: ModelConfig,
        cfg: TrainConfig,
        device: torch.device,
        from_inflated: bool,
        init: dict[str, nn.Module] | None,
    ) -> Networks:
        """G, D, G_ema and their optimizers; ``init`` (e.g. inflated weights) overrides the random init."""
        torch.manual_seed(cfg.seed)
        G, D = model.build_generator().to(device), model.build_discriminator().to(device)
        for name, net in (("G", G), ("D", D)):
            if init and name in init:
                net.load_state_dict(init[name].state_dict())
        G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        if init and "G_ema" in init:
            G_ema.load_state_dict(init["G_ema"].state_dict())
        lr = cfg.lr if cfg.lr is not None else (0.002 if from_inflated else 0.0025)
        betas = cfg.betas if cfg.betas is not None else DEFAULT_BETAS
        opt_G = make_optimizer(G, lr, betas, cfg.eps, self.objective(cfg).pl_interval)
        opt_D = make_optimizer(D, lr, betas, cfg.eps, self.objective(cfg).r1_interval)
        return Networks({"G": G, "G_ema": G_ema, "D": D}, {"G": opt_G, "D": opt_D})

    def phases(self, step: int, cfg: TrainConfig) -> list[Phase]:
        loss = self.objective(cfg)
        out = [self.phase("Gmain", ("G",))]
        if loss.pl_weight > 0 and step % loss.pl_interval == 0:
            out.append(self.phase("Greg", ("G",)))
        out.append(self.phase("Dmain", ("D",)))
        if loss.r1_gamma > 0 and step % loss.r1_interval == 0:
            out.append(self.phase("Dreg", ("D",)))
        return out

    def loss(
        self, phase: Phase, nets: Networks, mb: MicroBatch, state: TrainState, cfg: TrainConfig
    ) -> PhaseResult:
        G, D = cast(Generator, nets.modules["G"]), cast("Discriminator", nets.modules["D"])
        objective = self.objective(cfg)
        z = torch.randn(mb.size, G.z_dim, device=mb.device)  # drawn first in every phase (reals may flip)
        c = None  # a conditional G gets the reals' labels (no RNG drawn: unconditional runs unchanged)
        if G.c_dim:
            assert mb.labels is not None, "a conditional run's micro-batches carry labels"
            c = mb.labels()
        if phase.name == "Gmain":
            loss, stats = losses.g_main(G, D, z, objective, mb.autocast, mb.rounds, c)
            return PhaseResult(loss, stats)
        if phase.name == "Greg":
            pl_mean = _pl_mean(state, mb.device).float()
            loss, stats, length = losses.g_pl(G, z, pl_mean, objective, mb.autocast, mb.rounds, c)
            return PhaseResult(loss, stats, {"pl_length": length})
        if phase.name == "Dmain":
            loss, stats, side = losses.d_main(G, D, z, mb.reals(), objective, mb.autocast, mb.rounds, c)
            return PhaseResult(loss, stats, side)
        loss, stats = losses.d_r1(D, mb.reals(), objective, mb.autocast, mb.rounds, c)
        return PhaseResult(loss, stats)

    def after_phase(
        self,
        phase: Phase,
        nets: Networks,
        side: dict[str, Tensor],
        state: TrainState,
        cfg: TrainConfig,
        finite: Tensor,
    ) -> None:
        if phase.name == "Dmain":
            mapping = cast(Generator, nets.modules["G"]).mapping
            moved = mapping.w_avg.lerp(side["w_mean"], 1 - mapping.w_avg_beta)
            mapping.w_avg.copy_(torch.where(finite, moved, mapping.w_avg))
        elif phase.name == "Greg":
            pl_mean = _pl_mean(state, finite.device)
            moved = pl_mean + (side["pl_length"].double() - pl_mean) * self.objective(cfg).pl_decay
            state.extra["pl_mean"] = torch.where(finite, moved, pl_mean)

    def end_iteration(self, nets: Networks, state: TrainState, cfg: TrainConfig) -> None:
        update_ema(
            cast(Generator, nets.modules["G_ema"]),
            cast(Generator, nets.modules["G"]),
            ema_beta(cfg, state.cur_nimg),
        )

    def initial_extra_state(self) -> dict[str, float]:
        return {"pl_mean": 0.0}


def _pl_mean(state: TrainState, device: torch.device) -> Tensor:
    """``pl_mean`` as a float64 device tensor (a float after resume: moved once), updated in float64 as the
    float it was before it lived on the device, so runs keep their bits."""
    value = state.extra["pl_mean"]
    if not isinstance(value, Tensor):
        value = state.extra["pl_mean"] = torch.tensor(float(value), dtype=torch.float64, device=device)
    return value
