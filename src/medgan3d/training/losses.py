"""The StyleGAN2 objective in phases Gmain, Greg, Dmain, Dreg (Liu et al., arXiv 2208.03934 §3.1, §4.2.3; Karras et al., CVPR 2020).

* Gmain: non-saturating logistic loss ``softplus(-D(G(z)))``.
* Greg:  path-length regularisation every ``pl_interval`` G steps, weight 2, on half the batch.
* Dmain: ``softplus(D(G(z))) + softplus(-D(x))``.
* Dreg:  lazy R1, ``γ/2 · Σ_{C, all spatial axes} (∂D(x)/∂x)²`` with respect to the reals before any
  discriminator augmentation (which then runs inside D's forward, as in StyleGAN2-ADA), every
  ``r1_interval`` D steps.

A conditional model (``G.c_dim`` > 0) gets the label vectors ``c`` of the micro-batch's reals in every phase:
the fakes are generated for them and D scores both fakes and reals against them (StyleGAN2-ADA, Karras et al.,
NeurIPS 2020, App. C, draws the fakes' labels from the training set's distribution in the same way).

Lazy regularisers are multiplied by their interval here; the matching Adam correction (lr·r, betas**r
with r = k/(k+1)) lives in :func:`medgan3d.training.families.stylegan2.make_optimizer`.
Each function returns the loss of ONE micro-batch already divided by ``rounds`` so that gradients summed
over micro-batches (and averaged over ranks) are the gradient of the global-batch mean.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor

from medgan3d.config import LossConfig
from medgan3d.networks import Discriminator, Generator
from medgan3d.training.augment import REAL_SIGN

__all__ = ["LossConfig", "d_main", "d_r1", "g_main", "g_pl", "map_with_mixing"]


def map_with_mixing(G: Generator, z: Tensor, prob: float, c: Tensor | None = None) -> Tensor:
    """Mapping with style mixing: with probability ``prob`` the ws after one random cutoff come from a
    second z (one cutoff per micro-batch in ``[1, num_ws)``), with the same labels ``c`` (conditional G).
    The second pass never updates ``w_avg``."""
    kw = {} if c is None else {"c": c}
    ws = G.mapping(z, **kw)
    if prob > 0 and torch.rand(()) < prob:
        cutoff = int(torch.randint(1, ws.shape[1], ()))
        ws[:, cutoff:] = G.mapping(torch.randn_like(z), **kw)[:, cutoff:]
    return ws


def score(D: Discriminator, img: Tensor, c: Tensor | None) -> Tensor:
    """D's logits; a conditional D (projection) also takes the label vectors."""
    return D(img) if c is None else D(img, c)


def g_main(
    G: Generator,
    D: Discriminator,
    z: Tensor,
    cfg: LossConfig,
    autocast: AbstractContextManager,
    rounds: int,
    c: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    with autocast:
        img = G.synthesis(map_with_mixing(G, z, cfg.style_mixing, c))
        logits = score(D, img, c).float()
    loss = F.softplus(-logits).mean()
    return loss / rounds, {"loss/G": loss.detach(), "scores/fake": logits.detach().mean()}


def g_pl(
    G: Generator,
    z: Tensor,
    pl_mean: Tensor,
    cfg: LossConfig,
    autocast: AbstractContextManager,
    rounds: int,
    c: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """Path-length penalty against the current ``pl_mean``; also returns this micro-batch's mean length
    (the loop updates ``pl_mean`` once per phase with the mean over the global batch)."""
    n = max(z.shape[0] // cfg.pl_batch_shrink, 1)
    with autocast:
        ws = map_with_mixing(G, z[:n], cfg.style_mixing, None if c is None else c[:n])
        img = G.synthesis(ws).float()
    voxels = math.prod(img.shape[2:])
    noise = torch.randn_like(img) / math.sqrt(voxels)
    (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grads.float().square().sum(2).mean(1).sqrt()
    penalty = (lengths - pl_mean).square().mean()
    loss = penalty * cfg.pl_weight * cfg.pl_interval
    stats = {"loss/pl_penalty": penalty.detach(), "pl_length": lengths.detach().mean()}
    return loss / rounds, stats, lengths.detach().mean()


def d_main(
    G: Generator,
    D: Discriminator,
    z: Tensor,
    real: Tensor,
    cfg: LossConfig,
    autocast: AbstractContextManager,
    rounds: int,
    c: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
    """Returns the D(real) part of the loss, stats and side tensors: the micro-batch's mean w (the loop
    updates ``w_avg``) and the mean sign of the real logits (the adaptive augmentation's heuristic).

    The D(fake) part is backpropagated here, before D(real) runs, so that only one of the two graphs is
    alive at a time (half of Dmain's saved activations); the loop adds both parts' gradients as one sum
    (:func:`medgan3d.training.loop.accumulated_grads`), so they equal one backward of the whole loss."""
    with torch.no_grad(), autocast:
        ws = map_with_mixing(G, z, cfg.style_mixing, c)
        fake = G.synthesis(ws)
    with autocast:
        fake_logits = score(D, fake, c).float()
    fake_loss = F.softplus(fake_logits).mean()
    (fake_loss / rounds).backward()
    with autocast:
        real_logits = score(D, real, c).float()
    real_loss = F.softplus(-real_logits).mean()
    stats = {"loss/D": (fake_loss + real_loss).detach(), "scores/real": real_logits.detach().mean()}
    side = {"w_mean": ws[:, 0].float().mean(0), REAL_SIGN: real_logits.detach().sign().mean()}
    return real_loss / rounds, stats, side


def d_r1(
    D: Discriminator,
    real: Tensor,
    cfg: LossConfig,
    autocast: AbstractContextManager,
    rounds: int,
    c: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    real = real.detach().requires_grad_(True)
    with autocast:
        logits = score(D, real, c).float()
    (grads,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    penalty = grads.float().square().flatten(1).sum(1)  # over C and every spatial axis
    loss = penalty.mean() * (cfg.r1_gamma / 2) * cfg.r1_interval
    return loss / rounds, {"loss/r1_penalty": penalty.detach().mean()}
