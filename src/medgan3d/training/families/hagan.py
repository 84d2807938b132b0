"""The HA-GAN family on the shared loop: G, D, E^H, E^G with phases D, G, E_H, E_G.

Sun et al., "Hierarchical Amortized GAN for 3D High Resolution Medical Image Synthesis" (IEEE JBHI 2022),
§III-A–C, Eq. 1–6: every iteration picks one sub-volume position; D learns on the real/generated pair
(high-res sub-volume + position, low-res full volume) with the non-saturating logistic loss on the mean of
D^H's and D^L's logits; G learns against D; E^H learns to reconstruct the real sub-volume through the frozen
G^H (L1); E^G learns to map E^H's features of the whole volume to a z that G turns back into the real
sub-volume and low-res volume (L1, halved). Adam (0, 0.999), lr G 1e-4, D 4e-4, encoders 1e-4, no schedule.

Two deliberate differences from the published code (see docs/hagan.md):

* **Aligned sub-volumes.** The reference draws the real start slice r in [0, 7R/8] but crops G's latent at
  ⌊r/4⌋, so the generated sub-volume starts up to 3 slices before the real one. Here the start is drawn on the
  latent grid (s in [0, 7R/32], r = 4s), so real and generated sub-volumes cover the same slices.
  ``aligned: false`` reproduces the reference.
* **Conditional variant** (a labelled dataset; Sun et al.'s ``--num-class``): G takes the one-hot label
  concatenated to z, D also returns class logits (``fc2_class`` on D^H, 1 + N channels out of D^L, averaged).
  D: ``BCE(real) + CE(class_real, y) + BCE(fake)`` (no class term on fakes); G: ``BCE(fake, 1) + 0.1·CE(
  class_fake, y)``; fakes and E^G's reconstruction take the real micro-batch's labels y.
* **Spectral-norm power iterations once per phase** (D and G phases) instead of once per D forward, so that
  the result does not depend on how the batch is split into micro-batches and processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from medgan3d.config import HAGANConfig, HAGANLoss
from medgan3d.training.augment import REAL_SIGN
from medgan3d.training.family import Family, MicroBatch, Networks, Phase, PhaseResult, register
from medgan3d.training.optim import adam

if TYPE_CHECKING:
    from medgan3d.config import TrainConfig
    from medgan3d.networks.hagan import HAGANDiscriminator, HAGANEncoder, HAGANGenerator
    from medgan3d.training.loop import TrainState


@dataclass(frozen=True)
class Crop:
    """The sub-volume of one iteration: start on the latent grid, first real slice, D's position input."""

    latent_start: int
    real_start: int
    position: float  # real_start / (7R/8), in [0, 1]


def draw_crop(step: int, seed: int, resolution: int, loss: HAGANLoss) -> Crop:
    """One crop per iteration, a pure function of (seed, step): every phase and micro-batch shares it."""
    latent_sub, max_real = resolution // 32, resolution * 7 // 8
    if loss.selection == "deterministic":
        latent = (step % 8) * latent_sub
        return Crop(latent, 4 * latent, 4 * latent / max_real)
    g = torch.Generator().manual_seed((seed * 1_000_003 + step) * 8 + 7)
    if loss.aligned:
        latent = int(torch.randint(0, max_real // 4 + 1, (1,), generator=g))
        return Crop(latent, 4 * latent, 4 * latent / max_real)
    real = int(torch.randint(0, max_real + 1, (1,), generator=g))
    return Crop(real // 4, real, real / max_real)


def refresh_spectral_norm(D: nn.Module) -> None:
    """One power iteration of every spectrally normalised weight; D's forwards then run in eval mode (fixed u, v)."""
    D.train()
    with torch.no_grad():
        for module in D.modules():
            if parametrize.is_parametrized(module, "weight"):
                module.weight  # noqa: B018  (reading the weight in train mode runs the power iteration)
    D.eval()


def real_views(x: Tensor, crop: Crop, resolution: int, loss: HAGANLoss) -> tuple[Tensor, Tensor]:
    """The real sub-volume (R/8 slices from ``crop.real_start``) and the real low-res volume (R/4 per side)."""
    sub = x[:, :, crop.real_start : crop.real_start + resolution // 8]
    low = x[..., ::4, ::4, ::4] if loss.downsample == "nearest" else F.avg_pool3d(x, 4)
    return sub, low


def bce(logits: Tensor, target: float) -> Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


CLASS_WEIGHT_G = 0.1  # weight of the class term in G's loss (Sun et al.'s conditional train.py)


def split_logits(out: Tensor, num_class: int) -> tuple[Tensor, Tensor | None]:
    """D's output → (real/fake logit (B, 1), class logits (B, num_class) or None)."""
    return (out[:, :1], out[:, 1:]) if num_class else (out, None)


@register
class HAGAN(Family[HAGANConfig, HAGANLoss]):
    name = "hagan"
    phase_names = ("D", "G", "E_H", "E_G")
    loss_cls = HAGANLoss
    sample_from = "G"
    augmented = ("D.high", "D.low")  # sub-volumes and low-res volumes, each augmented on its own

    def build(
        self,
        model: HAGANConfig,
        cfg: TrainConfig,
        device: torch.device,
        from_inflated: bool,
        init: dict[str, nn.Module] | None,
    ) -> Networks:
        if init:
            raise ValueError("HA-GAN runs start from random weights (no --init-from/inflation)")
        torch.manual_seed(cfg.seed)
        nets: dict[str, nn.Module] = {
            "G": model.build_generator(),
            "D": model.build_discriminator(),
            "E_H": model.build_encoder(),
            "E_G": model.build_latent_encoder(),
        }
        nets = {k: v.to(device) for k, v in nets.items()}
        nets["D"].eval()  # spectral-norm vectors move only in refresh_spectral_norm
        loss = self.objective(cfg)
        scale = (
            cfg.lr / loss.lr_g if cfg.lr is not None else 1.0
        )  # --lr sets G's; the others keep their ratio
        betas = cfg.betas if cfg.betas is not None else loss.betas
        lrs = {"G": loss.lr_g, "D": loss.lr_d, "E_H": loss.lr_e, "E_G": loss.lr_e}
        opts: dict[str, torch.optim.Optimizer] = {
            k: adam(nets[k].parameters(), device, lr=lr * scale, betas=betas, eps=cfg.eps)
            for k, lr in lrs.items()
        }
        return Networks(nets, opts)

    def phases(self, step: int, cfg: TrainConfig) -> list[Phase]:
        names = self.phase_names if self.objective(cfg).encoder else self.phase_names[:2]
        return [self.phase(n, (n,)) for n in names]

    def begin_iteration(self, step: int, nets: Networks, cfg: TrainConfig) -> Crop:
        return draw_crop(
            step, cfg.seed, cast("HAGANGenerator", nets.modules["G"]).resolution, self.objective(cfg)
        )

    def before_phase(self, phase: Phase, nets: Networks) -> None:
        if phase.name in ("D", "G"):
            refresh_spectral_norm(nets.modules["D"])

    def loss(
        self, phase: Phase, nets: Networks, mb: MicroBatch, state: TrainState, cfg: TrainConfig
    ) -> PhaseResult:
        return getattr(self, f"_loss_{phase.name}")(nets, mb, self.objective(cfg))

    # ---------------------------------------------------------------------------------- the four steps

    @staticmethod
    def _G(nets: Networks) -> HAGANGenerator:
        return cast("HAGANGenerator", nets.modules["G"])

    @staticmethod
    def _D(nets: Networks) -> HAGANDiscriminator:
        return cast("HAGANDiscriminator", nets.modules["D"])

    def _fake(
        self, G: HAGANGenerator, z: Tensor, crop: Crop, loss: HAGANLoss, c: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        if loss.low_res:
            return G(z, crop.latent_start, c) if c is not None else G(z, crop.latent_start)
        h = G.common(z, c)
        return G.high(h[:, :, crop.latent_start : crop.latent_start + G.latent_sub_depth]), None

    def _score(
        self, D: HAGANDiscriminator, sub: Tensor, low: Tensor | None, crop: Crop, loss: HAGANLoss
    ) -> tuple[Tensor, Tensor | None]:
        """(real/fake logits, class logits or None) of D (D^H alone without the low-res branch)."""
        position = torch.full((sub.shape[0],), crop.position, device=sub.device)
        out = (D(sub, low, position) if loss.low_res else D.high(sub, position)).float()
        return split_logits(out, getattr(D, "num_class", 0))

    def _loss_D(self, nets: Networks, mb: MicroBatch, loss: HAGANLoss) -> PhaseResult:
        G, D, crop = self._G(nets), self._D(nets), mb.context
        z = torch.randn(mb.size, G.latent_dim, device=mb.device)
        c = mb.labels() if G.c_dim and mb.labels is not None else None
        real_sub, real_low = real_views(mb.reals(), crop, G.resolution, loss)
        with torch.no_grad(), mb.autocast:
            fake_sub, fake_low = self._fake(G, z, crop, loss, c)
        with mb.autocast:
            real_logits, real_class = self._score(D, real_sub, real_low, crop, loss)
            fake_logits, _ = self._score(D, fake_sub, fake_low, crop, loss)
        total = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
        stats = {"scores/real": real_logits.detach().mean(), "scores/fake": fake_logits.detach().mean()}
        if c is not None and real_class is not None:
            class_loss = F.cross_entropy(real_class, c.argmax(1))
            total = total + class_loss
            stats["loss/D_class"] = class_loss.detach()
        stats = {"loss/D": total.detach()} | stats
        return PhaseResult(total / mb.rounds, stats, {REAL_SIGN: real_logits.detach().sign().mean()})

    def _loss_G(self, nets: Networks, mb: MicroBatch, loss: HAGANLoss) -> PhaseResult:
        G, D, crop = self._G(nets), self._D(nets), mb.context
        z = torch.randn(mb.size, G.latent_dim, device=mb.device)
        c = mb.labels() if G.c_dim and mb.labels is not None else None
        with mb.autocast:
            logits, fake_class = self._score(D, *self._fake(G, z, crop, loss, c), crop, loss)
        total = bce(logits, 1.0)
        stats: dict[str, Tensor] = {}
        if c is not None and fake_class is not None:
            class_loss = F.cross_entropy(fake_class, c.argmax(1))
            total = total + CLASS_WEIGHT_G * class_loss
            stats["loss/G_class"] = class_loss.detach()
        return PhaseResult(total / mb.rounds, {"loss/G": total.detach()} | stats)

    def _loss_E_H(self, nets: Networks, mb: MicroBatch, loss: HAGANLoss) -> PhaseResult:
        G, E_H, crop = self._G(nets), cast("HAGANEncoder", nets.modules["E_H"]), mb.context
        real_sub, _ = real_views(mb.reals(), crop, G.resolution, loss)
        with mb.autocast:
            rec = G.high(E_H(real_sub)).float()
        total = F.l1_loss(rec, real_sub)
        return PhaseResult(total / mb.rounds, {"loss/E_H": total.detach()})

    def _loss_E_G(self, nets: Networks, mb: MicroBatch, loss: HAGANLoss) -> PhaseResult:
        from medgan3d.networks.hagan import training_latent_features

        G, E_H, E_G = self._G(nets), cast("HAGANEncoder", nets.modules["E_H"]), nets.modules["E_G"]
        crop = mb.context
        real = mb.reals()
        real_sub, real_low = real_views(real, crop, G.resolution, loss)
        with mb.autocast:
            with torch.no_grad():
                features = training_latent_features(E_H, real, G.sub_depth)
            c = mb.labels() if G.c_dim and mb.labels is not None else None
            rec_sub, rec_low = self._fake(G, E_G(features), crop, loss, c)
            total = F.l1_loss(rec_sub.float(), real_sub)
            if rec_low is not None:
                total = (total + F.l1_loss(rec_low.float(), real_low)) / 2
        return PhaseResult(total / mb.rounds, {"loss/E_G": total.detach()})
