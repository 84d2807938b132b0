"""The 3D GAN baselines of Liu et al. (arXiv 2208.03934, §4.4, Tables 6–8) as families of the shared loop.

Objectives and schedules as in Kwon et al.'s public code (MICCAI 2019, github.com/cyclomon/3dbraingen), with
fixes each behind a setting that restores the reference (docs/baselines.md lists them):

* ``wgan-gp`` (Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017, Algorithm 1, Eq. 3):
  phases ``D`` and ``G`` … ``G_6``. One loop iteration is one critic step on one real batch; every
  ``n_critic``-th iteration adds ``g_steps`` generator steps. kimg therefore counts the real volumes the
  critic has seen, and the generator takes ``g_steps / n_critic`` steps per iteration (the default 5:1 of
  Gulrajani et al.: one per 5 iterations; the reference's 1:5: five per iteration).
* ``vae-gan`` (Wu et al., "Learning a Probabilistic Latent Space of Object Shapes via 3D
  Generative-Adversarial Modeling", NeurIPS 2016, §3.2; Larsen et al., "Autoencoding beyond pixels using a
  learned similarity metric", ICML 2016, §2): phases ``D`` and ``GE``. G and E take their gradients at the
  same weights, each from its own loss (what the reference computed on PyTorch 0.4; on ≥ 1.5 it crashes,
  Q12), and the noise (z_p, ε) is shared by both phases as the reference draws it once per batch.
* ``alpha-gan`` (Rosca et al., "Variational Approaches for Auto-Encoding Generative Adversarial Networks",
  arXiv 1706.04987, §3 and Algorithm 1) and ``alpha-wgan-gp`` (Kwon et al. §2, Eq. 1–4): phases ``EG``
  (E and G on one backward, one optimiser step each: Q5), ``D`` and ``CD`` (the code critic on codes E
  encodes now: Q8). ``critic_batch="next"`` gives D and CD the next real batch (α-WGAN-GP's reference
  draws a second batch for its critic, Q16): even iterations run EG, odd ones D and CD, so kimg counts every
  real volume and one reference iteration is two loop iterations.

Every network stays in train mode (BatchNorm with batch statistics, as the reference); sampling switches
G's BatchNorm to running statistics (:meth:`BaselineGenerator.generate`). Batch statistics make a run depend
on ``batch_gpu`` (the reference's batch is 4: ``batch_gpu: 4``); under DDP the running statistics are averaged
over ranks after every iteration.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Generic, TypeVar, cast

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from medgan3d.config import (
    MAX_G_STEPS,
    AlphaGANLoss,
    AlphaWGANGPLoss,
    BaselineConfig,
    VAEGANLoss,
    WGANGPLoss,
)
from medgan3d.training.augment import REAL_SIGN
from medgan3d.training.family import Family, MicroBatch, Networks, Phase, PhaseResult, register
from medgan3d.training.optim import adam, guarded_step

BaselineLoss = TypeVar("BaselineLoss", bound=WGANGPLoss | VAEGANLoss | AlphaGANLoss | AlphaWGANGPLoss)
AlphaLoss = TypeVar("AlphaLoss", bound=AlphaGANLoss | AlphaWGANGPLoss)

if TYPE_CHECKING:
    from medgan3d.config import TrainConfig
    from medgan3d.training.loop import TrainState

# ------------------------------------------------------------------------------------------ shared pieces


def gradient_penalty(
    critic: nn.Module, real: Tensor, fake: Tensor, weight: float, per_sample: bool = True, eps: float = 0.0
) -> Tensor:
    """λ·mean((‖∇_x̂ ΣD(x̂)‖ − 1)²) at x̂ = α·real + (1 − α)·fake, α ~ U(0, 1) per sample (Gulrajani et al.,
    Eq. 3). The norm runs over each sample's whole gradient, or with ``per_sample=False`` over the channel
    axis of each voxel (the reference WGAN-GP's ``norm(2, dim=1)``; the mean then runs over every voxel).
    ``eps > 0``: √Σ(g² + eps), eps added to every entry as the reference α-WGAN-GP's helper does; 0: the plain
    norm (zero-safe backward) as the reference WGAN-GP's ``norm``."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).float().sum(), x_hat, create_graph=True)
    grad = grad.flatten(1) if per_sample else grad
    norms = torch.linalg.vector_norm(grad, dim=1) if eps == 0 else torch.sqrt((grad.square() + eps).sum(1))
    return weight * ((norms - 1) ** 2).mean()


def bce(logits: Tensor, target: float, stable: bool = True) -> Tensor:
    """Binary cross-entropy of a discriminator's logits against a constant label; ``stable=False`` is
    ``nn.BCELoss`` on sigmoid outputs (log clamped at −100), as the reference."""
    labels = torch.full_like(logits, target)
    if stable:
        return F.binary_cross_entropy_with_logits(logits, labels)
    return F.binary_cross_entropy(torch.sigmoid(logits), labels)


def score(critic: nn.Module, x: Tensor) -> Tensor:
    """One float score per sample (the mean of a patch critic's scores)."""
    return critic(x).float().mean(1)


def critic_sign(real: Tensor, fake: Tensor) -> dict[str, Tensor]:
    """The adaptive augmentation's heuristic for a Wasserstein critic, whose zero is arbitrary: the mean sign
    of D(real) − mean D(fake) (1 when every real scores above the fakes' mean, as an overfitted critic)."""
    return {REAL_SIGN: (real.detach() - fake.detach().mean()).sign().mean()}


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) averaged over every code entry (Kingma & Welling, Appendix B; the reference
    divides the sum by ``numel(μ)``)."""
    return -0.5 * torch.mean(1 + logvar - mu.square() - logvar.exp())


@contextlib.contextmanager
def running_stats_kept(*modules: nn.Module) -> Iterator[None]:
    """Forwards inside leave the BatchNorm running statistics (and counters) of ``modules`` as they were."""
    saved = [[b.clone() for b in m.buffers()] for m in modules]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(modules, saved, strict=True):
                for b, old in zip(m.buffers(), buffers, strict=True):
                    b.copy_(old)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def average_running_stats(modules: dict[str, nn.Module]) -> None:
    """Mean of every floating-point buffer (BN running mean/var) over DDP ranks; no-op in one process."""
    world = _world()
    if world == 1:
        return
    with torch.no_grad():
        for module in modules.values():
            for b in module.buffers():
                if b.is_floating_point():
                    dist.all_reduce(b)
                    b /= world


def surrogate(losses: dict[str, tuple[Tensor, nn.Module]]) -> Tensor:
    """A scalar whose backward leaves in each module's ``.grad`` the gradient of *its own* loss only.

    The loop takes one backward per micro-batch; a phase that steps two networks on two losses (VAE-GAN's G
    and E) returns Σ_modules Σ_p ⟨∂L_m/∂p, p⟩ with the gradients detached: its gradient w.r.t. p is ∂L_m/∂p.
    """
    items = list(losses.values())
    total = torch.zeros((), device=items[0][0].device)
    for i, (loss, module) in enumerate(items):
        params = [p for p in module.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, retain_graph=i < len(items) - 1, allow_unused=True)
        for p, g in zip(params, grads, strict=True):
            if g is not None:
                total = total + (g.detach() * p).sum()
    return total


class BaselineFamily(Family[BaselineConfig, BaselineLoss], Generic[BaselineLoss]):
    """What the four families share: networks from ``model.build_networks()``, one Adam per network (lr and
    betas from the settings; ``TrainConfig.lr``/``betas``, e.g. ``train --lr``, override them all), running
    statistics averaged under DDP."""

    def build(
        self,
        model: BaselineConfig,
        cfg: TrainConfig,
        device: torch.device,
        from_inflated: bool,
        init: dict[str, nn.Module] | None,
    ) -> Networks:
        if init:
            raise ValueError(f"{self.name} runs start from random weights (no --init-from/inflation)")
        if cfg.batch_gpu < 2:
            raise ValueError(
                f"{self.name}: batch_gpu must be >= 2 (BatchNorm needs two samples per micro-batch)"
            )
        torch.manual_seed(cfg.seed)
        nets = {k: v.to(device).train() for k, v in model.build_networks().items()}
        lr = cfg.lr if cfg.lr is not None else self.objective(cfg).lr
        betas = cfg.betas if cfg.betas is not None else self.objective(cfg).betas
        opts: dict[str, torch.optim.Optimizer] = {
            k: adam(v.parameters(), device, lr=lr, betas=betas, eps=cfg.eps) for k, v in nets.items()
        }
        return Networks(nets, opts)

    def loss(
        self, phase: Phase, nets: Networks, mb: MicroBatch, state: TrainState, cfg: TrainConfig
    ) -> PhaseResult:
        loss, stats, *side = getattr(self, f"_loss_{phase.name.split('_')[0]}")(
            nets.modules, mb, self.objective(cfg)
        )
        return PhaseResult(loss / mb.rounds, stats, *side)

    def end_iteration(self, nets: Networks, state: TrainState, cfg: TrainConfig) -> None:
        average_running_stats(nets.modules)

    def _z(self, nets: dict[str, nn.Module], mb: MicroBatch) -> Tensor:
        return torch.randn(mb.size, _latent_dim(nets), device=mb.device)


# ---------------------------------------------------------------------------------------------- WGAN-GP


@register
class WGANGP(BaselineFamily[WGANGPLoss]):
    name = "wgan-gp"
    phase_names = ("D", "G", *(f"G_{i}" for i in range(2, MAX_G_STEPS + 1)))
    loss_cls = WGANGPLoss
    sample_from = "G"

    def phases(self, step: int, cfg: TrainConfig) -> list[Phase]:
        loss = self.objective(cfg)
        out = [self.phase("D", ("D",))]
        if step % loss.n_critic == loss.n_critic - 1:
            out += [self.phase(n, ("G",)) for n in self.phase_names[1 : 1 + loss.g_steps]]
        return out

    def _loss_D(
        self, nets: dict[str, nn.Module], mb: MicroBatch, loss: WGANGPLoss
    ) -> tuple[Tensor, dict, dict]:
        G, D = nets["G"], nets["D"]
        z = self._z(nets, mb)  # drawn before the reals (a flip may draw from the RNG)
        real = mb.reals()
        with mb.autocast:
            with torch.no_grad():
                fake = G(z)
            real_score, fake_score = score(D, real), score(D, fake)
            gp = gradient_penalty(D, real, fake, loss.gp_weight, per_sample=loss.gp_norm == "sample")
        total = fake_score.mean() - real_score.mean() + gp
        stats = {
            "loss/D": total.detach(),
            "loss/gp": gp.detach(),
            "scores/real": real_score.detach().mean(),
            "scores/fake": fake_score.detach().mean(),
        }
        return total, stats, critic_sign(real_score, fake_score)

    def _loss_G(self, nets: dict[str, nn.Module], mb: MicroBatch, loss: WGANGPLoss) -> tuple[Tensor, dict]:
        z = self._z(nets, mb)
        with mb.autocast:
            total = -score(nets["D"], nets["G"](z)).mean()
        return total, {"loss/G": total.detach()}


# ---------------------------------------------------------------------------------------------- VAE-GAN


@register
class VAEGAN(BaselineFamily[VAEGANLoss]):
    name = "vae-gan"
    phase_names = ("D", "GE")
    loss_cls = VAEGANLoss
    sample_from = "G"

    def __init__(self) -> None:
        self._calls = 0

    def phases(self, step: int, cfg: TrainConfig) -> list[Phase]:
        return [self.phase("D", ("D",)), self.phase("GE", ("G", "E"))]

    def before_phase(self, phase: Phase, nets: Networks) -> None:
        self._calls = 0

    def loss(
        self, phase: Phase, nets: Networks, mb: MicroBatch, state: TrainState, cfg: TrainConfig
    ) -> PhaseResult:
        noise = self._noise(nets.modules, mb, cfg)
        if phase.name == "D":
            total, stats, side = self._loss_D(nets.modules, mb, self.objective(cfg), noise)
            return PhaseResult(total / mb.rounds, stats, side)
        return self._loss_GE(nets.modules, mb, self.objective(cfg), noise)

    def _noise(self, nets: dict[str, nn.Module], mb: MicroBatch, cfg: TrainConfig) -> tuple[Tensor, Tensor]:
        """(z_p, ε) of this micro-batch: from torch's RNG (seeded per phase by the loop), or with
        ``shared_noise`` from a generator seeded by (run seed, iteration, global micro-batch), the same in
        both phases. The loop calls each phase's micro-batches in order, so the call count is the index."""
        shape = (mb.size, _latent_dim(nets))
        micro = _rank() * mb.rounds + self._calls
        self._calls += 1
        if not self.objective(cfg).shared_noise:
            return torch.randn(shape, device=mb.device), torch.randn(shape, device=mb.device)
        g = torch.Generator(device=mb.device)
        g.manual_seed((((cfg.seed * 1_000_003 + mb.step) * 65_537 + micro) * 2 + 1) % (1 << 62))
        return (
            torch.randn(shape, generator=g, device=mb.device),
            torch.randn(shape, generator=g, device=mb.device),
        )

    def _loss_D(
        self, nets: dict[str, nn.Module], mb: MicroBatch, loss: VAEGANLoss, noise: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, dict, dict]:
        G, D, E = nets["G"], nets["D"], nets["E"]
        z_p, eps = noise
        real = mb.reals()
        with mb.autocast:
            # the reference runs E and G once per batch: the GE phase's forward updates their statistics
            with torch.no_grad(), running_stats_kept(E, G):
                x_rec, x_rand = G(E(real, eps)[2]), G(z_p)
            logits = [D(v).float() for v in (real, x_rec, x_rand)]
        total = cast(
            Tensor, sum(bce(t, y, loss.stable_bce) for t, y in zip(logits, (1.0, 0.0, 0.0), strict=True))
        )
        stats = {
            "loss/D": total.detach(),
            "scores/real": logits[0].detach().mean(),
            "scores/fake": logits[2].detach().mean(),
        }
        return total, stats, {REAL_SIGN: logits[0].detach().sign().mean()}

    def _loss_GE(
        self, nets: dict[str, nn.Module], mb: MicroBatch, loss: VAEGANLoss, noise: tuple[Tensor, Tensor]
    ) -> PhaseResult:
        """L_G and L_E on one forward; G steps on ∇L_G and E on ∇L_E, both at the current weights."""
        G, D, E = nets["G"], nets["D"], nets["E"]
        z_p, eps = noise
        real = mb.reals()
        with mb.autocast:
            mu, logvar, z_e = E(real, eps)
            x_rec, x_rand = G(z_e), G(z_p)
            rec = F.mse_loss(x_rec.float(), real)
            rec_logits, rand_logits = D(x_rec).float(), D(x_rand).float()
            b = functools.partial(bce, stable=loss.stable_bce)
            if loss.adversarial == "minimax":
                with torch.no_grad():
                    real_term = b(D(real).float(), 1.0)
                adversarial = -(real_term + b(rec_logits, 0.0) + b(rand_logits, 0.0))
            else:
                adversarial = b(rec_logits, 1.0) + b(rand_logits, 1.0)
        kl = kl_divergence(mu.float(), logvar.float())
        loss_G = loss.gamma * rec + adversarial
        loss_E = loss.kl_weight * kl + loss.beta * rec
        total = surrogate({"G": (loss_G / mb.rounds, G), "E": (loss_E / mb.rounds, E)})
        stats = {
            "loss/G": loss_G.detach(),
            "loss/E": loss_E.detach(),
            "loss/rec": rec.detach(),
            "loss/kl": kl.detach(),
        }
        return PhaseResult(total, stats)


# ------------------------------------------------------------------------------------ α-GAN, α-WGAN-GP


class AlphaFamily(BaselineFamily[AlphaLoss], Generic[AlphaLoss]):
    """Phases EG, D, CD of both α models; ``critic_batch="next"``: EG on even iterations, D and CD on odd."""

    phase_names = ("EG", "D", "CD")
    sample_from = "G"

    def phases(self, step: int, cfg: TrainConfig) -> list[Phase]:
        eg, d, cd = self.phase("EG", ("E", "G")), self.phase("D", ("D",)), self.phase("CD", ("CD",))
        if self.objective(cfg).critic_batch == "same":
            return [eg, d, cd]
        return [eg] if step % 2 == 0 else [d, cd]

    def after_phase(
        self,
        phase: Phase,
        nets: Networks,
        side: dict[str, Tensor],
        state: TrainState,
        cfg: TrainConfig,
        finite: Tensor,
    ) -> None:
        if (
            phase.name == "EG" and self.objective(cfg).g_double_step
        ):  # the reference's second step on one gradient (Q5)
            guarded_step(nets.optimizers["G"], finite)

    def _forward(
        self, nets: dict[str, nn.Module], mb: MicroBatch
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """(x, z_p, z_e, x_rec, x_rand) with the current E and G (graphs kept where gradients are on)."""
        z_p = self._z(nets, mb)
        real = mb.reals()
        z_e = nets["E"](real).float()
        return real, z_p, z_e, nets["G"](z_e).float(), nets["G"](z_p).float()

    @staticmethod
    def _eg_total(loss: AlphaLoss, rec: Tensor, code: Tensor, image: Tensor) -> tuple[Tensor, dict]:
        """E+G's objective from its three terms (the weights of rec and code are the loss's) and its stats."""
        total = loss.rec_weight * rec + loss.code_weight * code + image
        return total, {
            "loss/EG": total.detach(),
            "loss/rec": rec.detach(),
            "loss/G": image.detach(),
            "loss/code": code.detach(),
        }


@register
class AlphaGAN(AlphaFamily[AlphaGANLoss]):
    name = "alpha-gan"
    loss_cls = AlphaGANLoss

    def _loss_EG(self, nets: dict[str, nn.Module], mb: MicroBatch, loss: AlphaGANLoss) -> tuple[Tensor, dict]:
        b = functools.partial(bce, stable=loss.stable_bce)
        with mb.autocast:
            real, _, z_e, x_rec, x_rand = self._forward(nets, mb)
            rec = F.l1_loss(x_rec, real)
            code = b(nets["CD"](z_e).float(), 1.0)
            image = b(nets["D"](x_rec).float(), 1.0) + b(nets["D"](x_rand).float(), 1.0)
        return self._eg_total(loss, rec, code, image)

    def _loss_D(
        self, nets: dict[str, nn.Module], mb: MicroBatch, loss: AlphaGANLoss
    ) -> tuple[Tensor, dict, dict]:
        D = nets["D"]
        with mb.autocast:
            with torch.no_grad():
                real, _, _, x_rec, x_rand = self._forward(nets, mb)
            real_logits, rec_logits, rand_logits = (D(v).float() for v in (real, x_rec, x_rand))
        b = functools.partial(bce, stable=loss.stable_bce)
        total = loss.real_weight * b(real_logits, 1.0) + b(rec_logits, 0.0) + b(rand_logits, 0.0)
        stats = {
            "loss/D": total.detach(),
            "scores/real": real_logits.detach().mean(),
            "scores/fake": rand_logits.detach().mean(),
        }
        return total, stats, {REAL_SIGN: real_logits.detach().sign().mean()}

    def _loss_CD(self, nets: dict[str, nn.Module], mb: MicroBatch, loss: AlphaGANLoss) -> tuple[Tensor, dict]:
        z_p = self._z(nets, mb)
        real = mb.reals()
        with mb.autocast:
            with torch.no_grad():
                z_e = nets["E"](real).float()
            b = functools.partial(bce, stable=loss.stable_bce)
            total = b(nets["CD"](z_e).float(), 0.0) + b(nets["CD"](z_p).float(), 1.0)
        return total, {"loss/CD": total.detach()}


@register
class AlphaWGANGP(AlphaFamily[AlphaWGANGPLoss]):
    name = "alpha-wgan-gp"
    loss_cls = AlphaWGANGPLoss
    GP_EPS = 1e-15  # inside the square root, as the reference's penalty helper

    def _loss_EG(
        self, nets: dict[str, nn.Module], mb: MicroBatch, loss: AlphaWGANGPLoss
    ) -> tuple[Tensor, dict]:
        with mb.autocast:
            real, _, z_e, x_rec, x_rand = self._forward(nets, mb)
            rec = F.l1_loss(x_rec, real)
            code = -score(nets["CD"], z_e).mean()
            image = -score(nets["D"], x_rec).mean() - score(nets["D"], x_rand).mean()
        return self._eg_total(loss, rec, code, image)

    def _loss_D(
        self, nets: dict[str, nn.Module], mb: MicroBatch, loss: AlphaWGANGPLoss
    ) -> tuple[Tensor, dict, dict]:
        D = nets["D"]
        with mb.autocast:
            with torch.no_grad():
                real, _, _, x_rec, x_rand = self._forward(nets, mb)
            real_s, rec_s, rand_s = (score(D, v) for v in (real, x_rec, x_rand))
            gp = gradient_penalty(D, real, x_rand, loss.gp_weight, eps=self.GP_EPS) + gradient_penalty(
                D, real, x_rec, loss.gp_weight, eps=self.GP_EPS
            )
        total = -loss.real_weight * real_s.mean() + rec_s.mean() + rand_s.mean() + gp
        stats = {
            "loss/D": total.detach(),
            "loss/gp": gp.detach(),
            "scores/real": real_s.detach().mean(),
            "scores/fake": rand_s.detach().mean(),
        }
        return total, stats, critic_sign(real_s, rand_s)

    def _loss_CD(
        self, nets: dict[str, nn.Module], mb: MicroBatch, loss: AlphaWGANGPLoss
    ) -> tuple[Tensor, dict]:
        CD = nets["CD"]
        z_p = self._z(nets, mb)
        real = mb.reals()
        with mb.autocast:
            with torch.no_grad():
                z_e = nets["E"](real).float()
            encoded = score(CD, z_e).mean() if loss.cd_sees_encoded else torch.zeros((), device=mb.device)
            gp = gradient_penalty(CD, z_e, z_p, loss.code_gp_weight, eps=self.GP_EPS)
            total = encoded - score(CD, z_p).mean() + gp
        return total, {"loss/CD": total.detach(), "loss/code_gp": gp.detach()}


def _latent_dim(nets: dict[str, nn.Module]) -> int:
    """The generator's z length (every baseline generator has an int ``latent_dim``)."""
    return cast(int, nets["G"].latent_dim)
