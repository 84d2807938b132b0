"""No host↔device synchronisation inside a training iteration; the guarded optimizer step is exact.

On CPU a device→host read is counted where every one of them passes: ``aten._local_scalar_dense`` (what
``.item()``, ``float(t)``, ``bool(t)`` and ``if t:`` dispatch to), seen by a ``TorchDispatchMode``. Reads of
tensors that live on the host in a CUDA run too are not syncs and are told apart: the optimizers' step
counters (CPU tensors of non-fused Adam, read in ``torch.optim``), the decisions drawn from the CPU generator
(style-mixing coin and cutoff, HA-GAN's crop) and the guard's flag when the device is the CPU, by the
function that reads them
(:class:`medgan3d.training.measure.DeviceReads`). Where CUDA exists the same iterations also run under
``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from medgan3d.config import load_preset
from medgan3d.training import loop
from medgan3d.training.family import family_for
from medgan3d.training.measure import DeviceReads
from medgan3d.training.optim import guarded_step, masked_step


class RandomReals(loop.RealBatches):
    def __init__(self, shape: tuple[int, ...], cfg: loop.TrainConfig, d: loop.Dist) -> None:
        self.cfg, self.d = cfg, d
        g = torch.Generator().manual_seed(0)
        self.batch = (torch.rand(cfg.batch_gpu, *shape, generator=g) * 2 - 1).to(d.device)

    def micro(self, position: int, r: int) -> torch.Tensor:
        return self.batch


def _bundle(preset: str, device: torch.device, **train: Any):  # type: ignore[no-untyped-def]
    model = load_preset(preset).model
    family = family_for(model)
    cfg = loop.resolve_loss(loop.TrainConfig(batch=4, batch_gpu=2, seed=1, **train), family)
    d = loop.Dist(device=device)
    nets = loop.build_networks(family, model, cfg, device, from_inflated=False)
    state = loop.TrainState(extra=family.initial_extra_state())
    return family, nets, RandomReals(model.output_shape, cfg, d), state, cfg, d


# every phase of each family: StyleGAN2 at iteration 16 runs Gmain, Greg, Dmain, Dreg
FAMILIES = [
    ("tiny", 16),
    ("hagan-tiny", 1),
    ("wgan-gp-tiny", 5),
    ("vae-gan-tiny", 1),
    ("alpha-gan-tiny", 1),
    ("alpha-wgan-gp-tiny", 1),
]


@pytest.mark.parametrize("preset, start", FAMILIES)
def test_no_device_reads_inside_iterations(preset: str, start: int) -> None:
    family, nets, reals, state, cfg, d = _bundle(preset, torch.device("cpu"))
    rows = [loop.train_step(family, nets, reals, state, cfg, d, 2) for _ in range(2)]  # the optimizer states
    state.batch_idx = start
    names = {p.name for p in family.phases(start, cfg)}
    with DeviceReads() as counter:
        for _ in range(3):
            rows.append(loop.train_step(family, nets, reals, state, cfg, d, 2))
    assert counter.reads == [], (
        f"{len(counter.reads)} device reads in 3 iterations; first:\n{counter.reads[0]}"
    )
    assert {k[len(loop.SKIPPED) :] for k in rows[2] if k.startswith(loop.SKIPPED)} == names
    plain = loop.settle_rows(rows, state, cfg)  # the tick: the one read
    assert state.bad_total == 0 and all(r["skipped_phases"] == 0 for r in plain)
    assert all(isinstance(v, float) for r in plain for v in r.values())
    loss_keys = [k for k in plain[2] if k.startswith("loss/")]
    assert loss_keys and all(torch.isfinite(torch.tensor(plain[2][k])) for k in loss_keys)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("preset, start", FAMILIES[:2])
def test_no_cuda_syncs_inside_iterations(preset: str, start: int) -> None:
    family, nets, reals, state, cfg, d = _bundle(preset, torch.device("cuda"))
    loop.train_step(family, nets, reals, state, cfg, d, 2)
    state.batch_idx = start
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            loop.train_step(family, nets, reals, state, cfg, d, 2)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_the_tick_applies_the_streak_rule_as_the_iterations_did() -> None:
    """Rows of flags as train_step writes them: bad_total counts skipped phases, the streak resets on a clean
    iteration and the run stops on the iteration that makes it longer than max_bad_steps, naming it."""
    cfg = loop.TrainConfig(max_bad_steps=2)
    state = loop.TrainState()

    def row(kimg: float, **skipped: float) -> dict:  # type: ignore[type-arg]
        flags = {f"{loop.SKIPPED}{k}": torch.tensor(v, dtype=torch.float64) for k, v in skipped.items()}
        return {"loss/G": torch.tensor(0.5), loop.KIMG: kimg, "sec_per_iter": 0.1} | flags

    plain = loop.settle_rows([row(0.0, Gmain=1, Dmain=1), row(0.1, Gmain=0), row(0.2, Dmain=1)], state, cfg)
    assert [r["skipped_phases"] for r in plain] == [2.0, 0.0, 1.0]
    assert (state.bad_total, state.bad_consecutive) == (3, 1)
    assert plain[0]["loss/G"] == 0.5 and loop.KIMG not in plain[0]
    with pytest.raises(loop.TrainingError, match=r"3 iterations in a row.*last: Greg at kimg 0.40"):
        loop.settle_rows([row(0.3, Gmain=1), row(0.4, Greg=1), row(0.5)], state, cfg)


def _adam(how: str) -> tuple[list[torch.Tensor], torch.optim.Adam]:
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(7, 3, generator=g).requires_grad_(), torch.randn(5, generator=g).requires_grad_()]
    return params, torch.optim.Adam(params, lr=0.01, betas=(0.0, 0.99), fused=how == "fused")


def _grads(params: list[torch.Tensor], seed: int, bad: bool = False) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)
    if bad:
        params[1].grad[2] = float("nan")


def _opt_state(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v.clone() for s in opt.state.values() for v in s.values()]


@pytest.mark.parametrize("how", ["host flag", "masked", "fused"])
def test_guarded_step_is_the_step_or_nothing(how: str) -> None:
    """A finite guarded step is bit-identical to ``step()``; a non-finite one leaves parameters, moments and
    the step counter as they were, also on the first step (whose state a later first step recreates). The
    three ways: the CPU's host read, the masked step (non-fused optimizers on a GPU), fused Adam's
    ``found_inf`` (CUDA; fused Adam takes it on CPU too)."""
    (ref, ref_opt), (got, got_opt) = _adam(how), _adam(how)
    step = masked_step if how == "masked" else guarded_step
    yes, no = torch.tensor(True), torch.tensor(False)
    _grads(got, 0, bad=True)
    step(got_opt, no)  # a skipped first step
    assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True))
    for seed, bad in ((1, False), (2, True), (3, False), (4, False)):
        before, state = [p.detach().clone() for p in got], _opt_state(got_opt)
        _grads(got, seed, bad)
        step(got_opt, no if bad else yes)
        if bad:
            assert all(torch.equal(a, b) for a, b in zip(before, got, strict=True))
            assert all(torch.equal(a, b) for a, b in zip(state, _opt_state(got_opt), strict=True))
            continue
        _grads(ref, seed)
        ref_opt.step()
        assert all(torch.equal(a, b) for a, b in zip(ref, got, strict=True))
        assert all(torch.equal(a, b) for a, b in zip(_opt_state(ref_opt), _opt_state(got_opt), strict=True))
