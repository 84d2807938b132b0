"""The step's memory and precision changes keep training results: Dmain's order, the foreach EMA, bf16.

* Dmain backpropagates D(fake) before it runs D(real): the gradients must be bit-identical to one backward
  of the whole loss accumulated over micro-batches as before, with half the saved activations alive.
* The EMA of G as foreach ops equals a ``lerp`` per tensor.
* bf16 autocast, the default on CUDA, tracks fp32 over a short CPU run (losses and a metric).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from medgan3d.config import load_preset
from medgan3d.training import loop, losses
from medgan3d.training.families import stylegan2
from medgan3d.training.family import MicroBatch, family_for
from medgan3d.training.measure import SavedActivations


def joint_d_main(
    G: Any,
    D: Any,
    z: torch.Tensor,
    real: torch.Tensor,
    cfg: Any,
    autocast: Any,
    rounds: int,  # type: ignore[no-untyped-def]
    c: torch.Tensor | None = None,
):
    """Dmain as it was: both D passes, then one backward of the sum (by the caller)."""
    with torch.no_grad(), autocast:
        ws = losses.map_with_mixing(G, z, cfg.style_mixing, c)
        fake = G.synthesis(ws)
    with autocast:
        fake_logits, real_logits = losses.score(D, fake, c).float(), losses.score(D, real, c).float()
    loss = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
    return loss / rounds, {"loss/D": loss.detach()}, ws[:, 0].float().mean(0)


def _setup(preset: str = "tiny"):  # type: ignore[no-untyped-def]
    model = load_preset(preset).model
    family = family_for(model)
    cfg = loop.resolve_loss(loop.TrainConfig(batch=4, batch_gpu=2, seed=5), family)
    nets = loop.build_networks(family, model, cfg, torch.device("cpu"), from_inflated=False)
    g = torch.Generator().manual_seed(1)
    reals = torch.rand(4, *model.output_shape, generator=g) * 2 - 1
    return family, nets, cfg, reals


def _dmain_grads_as_before(reals: torch.Tensor) -> tuple[list[torch.Tensor], float]:
    """Today's accumulation with no help from the loop: per micro-batch one backward of the joint loss."""
    family, nets, cfg, _ = _setup()
    phase = family.phase("Dmain", ("D",))
    nets.modules["D"].requires_grad_(True)
    nets.modules["G"].requires_grad_(False)
    state = loop.TrainState(extra=family.initial_extra_state())
    with SavedActivations() as saved:
        for r in range(2):
            loop.seed_micro(cfg.seed, 0, phase.index, r)
            mb = MicroBatch(
                2,
                2,
                torch.device("cpu"),
                contextlib.nullcontext(),
                lambda r=r: reals[2 * r : 2 * r + 2],
                0,
                None,
            )
            original = losses.d_main
            losses.d_main = joint_d_main
            try:
                family.loss(phase, nets, mb, state, cfg).loss.backward()
            finally:
                losses.d_main = original
    return [p.grad.clone() for p in nets.modules["D"].parameters()], saved.peak


def test_dmain_fake_backward_first_gives_the_same_gradients_with_less_memory() -> None:
    family, nets, cfg, reals = _setup()
    want, joint_peak = _dmain_grads_as_before(reals)
    batches = loop.RealBatches(torch.utils.data.TensorDataset(reals), cfg, loop.Dist(), 2)
    batches.micro = lambda position, r: reals[2 * r : 2 * r + 2]  # type: ignore[method-assign]
    opt = nets.optimizers["D"]
    opt.step = lambda: None  # type: ignore[method-assign]  (keep the gradients comparable)
    state = loop.TrainState(extra=family.initial_extra_state())
    with SavedActivations() as saved:
        loop.run_phase(family, family.phase("Dmain", ("D",)), nets, batches, state, cfg, loop.Dist(), 2)
    got = [p.grad for p in nets.modules["D"].parameters()]
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
    assert any(g.abs().max() > 0 for g in got)
    assert saved.peak < 0.6 * joint_peak, (saved.peak, joint_peak)


def test_foreach_ema_equals_a_lerp_per_tensor() -> None:
    _, nets, _, _ = _setup()
    G, G_ema = nets.modules["G"], nets.modules["G_ema"]
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
    want = [p.detach().lerp(e, 0.37) for p, e in zip(G.parameters(), G_ema.parameters(), strict=True)]
    stylegan2.update_ema(G_ema, G, 0.37)
    assert all(torch.equal(a, b) for a, b in zip(want, G_ema.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(G.buffers(), G_ema.buffers(), strict=True))


def _rows(run: Path, name: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (run / name).read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_bf16_training_tracks_fp32(brain16: Path, tmp_path: Path) -> None:
    """The same seeded run in fp32 and under bf16 autocast (0.096 kimg, 12 iterations, Gmain, Greg, Dmain,
    Dreg): per-tick losses and the snapshot's MMD agree within bounds that the two precisions' rounding
    explains (a bf16 mantissa holds 8 bits: relative error ~4e-3 per op)."""
    cfg = loop.TrainConfig(
        batch=8,
        batch_gpu=4,
        kimg=0.096,
        tick_kimg=0.032,
        snapshot_ticks=100,
        grid=2,
        seed=3,
        metrics=("mmd",),
        metrics_samples=8,
    )
    model = load_preset("tiny").model
    runs = {
        p: loop.train(brain16, model, dataclasses.replace(cfg, bf16=p == "bf16"), outdir=tmp_path / p)
        for p in ("fp32", "bf16")
    }
    stats = {p: _rows(run, "stats.jsonl") for p, run in runs.items()}
    keys, differs = ("loss/G", "loss/D", "scores/real", "scores/fake"), False
    for a, b in zip(stats["fp32"], stats["bf16"], strict=True):
        for key in keys:
            assert abs(a[key] - b[key]) < 0.02 + 0.02 * abs(a[key]), (key, a["kimg"], a[key], b[key])
            differs |= a[key] != b[key]
    assert differs  # bf16 did run: its rounding shows
    mmd = {p: _rows(run, "metrics.jsonl")[-1]["mmd"] for p, run in runs.items()}
    assert abs(mmd["fp32"] - mmd["bf16"]) < 0.01 + 0.05 * mmd["fp32"], mmd


@pytest.mark.parametrize("preset", ["tiny", "coca-baseline", "coca-ss"])
def test_discriminator_keeps_no_activation_twice(preset: str) -> None:
    """D(x)'s backward keeps no activation in two copies (e.g. NCDHW and a channels-last clone of it): saved
    tensors of one shape in different storages never hold the same values."""
    model = load_preset(preset).model
    D = model.build_discriminator()
    x = torch.randn(2, *model.output_shape)
    saved: dict[tuple[int, ...], list[torch.Tensor]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter) and t.dim() == x.dim() and t.shape[0] == 2:
            saved.setdefault(tuple(t.shape), []).append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        D(x)
    assert len(saved) > 3
    for shape, tensors in saved.items():
        for i, a in enumerate(tensors):
            for b in tensors[i + 1 :]:
                same_storage = a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
                assert same_storage or not torch.equal(a, b), shape
