"""Optimizer steps that never read a device value on the host.

The loop's non-finite guard (:func:`medgan3d.training.loop.run_phase`) decides on the device whether a phase's
gradients are finite and hands that 0-dim boolean to :func:`guarded_step`, which skips the update without a
host↔device synchronisation: fused Adam (CUDA) takes it as ``found_inf`` and leaves parameters, moments and
step counter as they were, the way mixed-precision loss scaling skips steps; any other optimizer on a
device steps and then selects the old values back with ``torch.where`` (exact: a finite step is
bit-identical to an unguarded one, a non-finite one to no step at all). On the CPU the flag is host memory:
reading it costs nothing and spares the copies of the masked step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def adam(
    params: Iterable[Tensor] | Iterable[dict],
    device: torch.device,
    lr: float,
    betas: tuple[float, float],
    eps: float,
) -> torch.optim.Adam:
    """Adam, fused into one kernel per step on CUDA. On CPU the per-tensor implementation is kept: fused CPU
    Adam rounds differently (1 ulp), which would change every seeded CPU result (tests/training/test_loop_golden.py)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=device.type == "cuda")


def supports_found_inf(opt: torch.optim.Optimizer) -> bool:
    """Whether ``opt.step`` skips itself on a device flag (fused Adam/AdamW/SGD read ``opt.found_inf``)."""
    return bool(opt.defaults.get("fused")) and getattr(opt, "_step_supports_amp_scaling", False)


def guarded_step(opt: torch.optim.Optimizer, finite: Tensor) -> None:
    """``opt.step()`` if ``finite`` (a 0-dim bool on the parameters' device) is true, else nothing at all."""
    if finite.device.type == "cpu" and not supports_found_inf(opt):
        if bool(finite):  # host memory: not a sync (listed in medgan3d.training.measure.HOST_READS)
            opt.step()
        return
    if supports_found_inf(opt):
        opt.found_inf = (~finite).float()  # type: ignore[attr-defined]  # optional attributes fused Adam reads
        opt.grad_scale = None  # type: ignore[attr-defined]  # optional attributes fused Adam reads
        try:
            opt.step()
        finally:
            del opt.found_inf, opt.grad_scale  # type: ignore[attr-defined]  # optional attributes fused Adam reads
        return
    masked_step(opt, finite)


def masked_step(opt: torch.optim.Optimizer, finite: Tensor) -> None:
    """Step, then keep the old parameters and state unless ``finite``: any optimizer whose state starts at
    zeros (Adam), no host read, but a copy of the parameters and the state."""
    saved = _snapshot(opt)
    opt.step()
    _keep_if(finite, opt, saved)


_Snapshot = list[tuple[Tensor, Tensor, dict[str, Tensor]]]


def _snapshot(opt: torch.optim.Optimizer) -> _Snapshot:
    """Copies of every parameter the step will touch and of its optimizer state tensors."""
    out = []
    for group in opt.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            state = {k: v.clone() for k, v in opt.state.get(p, {}).items() if isinstance(v, Tensor)}
            out.append((p, p.detach().clone(), state))
    return out


@torch.no_grad()
def _keep_if(finite: Tensor, opt: torch.optim.Optimizer, saved: _Snapshot) -> None:
    """Undo the step unless ``finite``. State created by this step (Adam's first) goes back to its zeros,
    which is what a later first step would create."""
    for p, old, old_state in saved:
        p.copy_(torch.where(finite.to(p.device), p, old))
        for k, v in opt.state[p].items():
            if isinstance(v, Tensor):
                before = old_state.get(k)
                before = before if before is not None else torch.zeros_like(v)
                v.copy_(torch.where(finite.to(v.device), v, before))
