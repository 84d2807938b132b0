"""FIR resampling as one linear autograd Function: equal to the depthwise-convolution formulation it replaced.

The reference below is the previous implementation (autograd through three depthwise convolutions per op).
The Function must give the same values, gradients and double gradients (float64 to 1e-12, float32 to its
rounding), pass gradcheck/gradgradcheck, save no tensors for backward, make no tensor per call, and keep its
double backward's op count independent of the channel count (aten's double backward of a grouped
convolution loops over the groups).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from medgan3d.networks.layers import blur_fir, channels_last, conv_fn, downsample_fir, upsample_fir

DIMS = [2, 3]


def _reference(x: torch.Tensor, nd: int, axis_gain: float, stride: int, pad: int, up: bool) -> torch.Tensor:
    """The previous implementation: a depthwise (transposed) convolution per axis, taps made per call."""
    conv = {2: F.conv_transpose2d, 3: F.conv_transpose3d}[nd] if up else conv_fn(nd)
    x = channels_last(x)
    for axis in range(nd):
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype)
        taps = taps / taps.sum() * axis_gain
        shape = [4 if a == axis else 1 for a in range(nd)]
        kernel = taps.reshape(1, 1, *shape).expand(x.shape[1], 1, *shape)
        stride_t = tuple(stride if a == axis else 1 for a in range(nd))
        pad_t = tuple(pad if a == axis else 0 for a in range(nd))
        x = conv(x, kernel, stride=stride_t, padding=pad_t, groups=x.shape[1])
    return x


def _ops(
    nd: int,
) -> dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]]:
    """name -> (new, reference)."""
    return {
        "up": (lambda x: upsample_fir(x, nd), lambda x: _reference(x, nd, 2.0, 2, 1, True)),
        "down": (lambda x: downsample_fir(x, nd), lambda x: _reference(x, nd, 1.0, 2, 1, False)),
        "blur": (lambda x: blur_fir(x, nd, pad=2), lambda x: _reference(x, nd, 1.0, 1, 2, False)),
        "blur_gain": (
            lambda x: blur_fir(x, nd, pad=1, gain=2.0**nd),
            lambda x: _reference(x, nd, 2.0, 1, 1, False),
        ),
    }


def _value_grad_gradgrad(op: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor) -> list[torch.Tensor]:
    """y = op(x·a)², its gradient against fixed weights (graph kept), and the gradient of |g|² w.r.t. x and a."""
    nd = x0.ndim - 2
    x = x0.clone().requires_grad_()
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(x0.shape[1], dtype=x0.dtype, generator=gen).requires_grad_()
    y = op(x * a.reshape(1, -1, *([1] * nd))).square()
    w = torch.randn(y.shape, dtype=y.dtype, generator=gen)
    (g,) = torch.autograd.grad((y * w).sum(), x, create_graph=True)
    gx, ga = torch.autograd.grad(g.square().sum(), [x, a])
    return [y.detach(), g.detach(), gx, ga]


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("name", ["up", "down", "blur", "blur_gain"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_fir_equals_previous_implementation(nd: int, name: str, layout: str) -> None:
    new, ref = _ops(nd)[name]
    for dtype in (torch.float64, torch.float32):
        x0 = torch.randn(2, 5, *([7] * nd), dtype=dtype, generator=torch.Generator().manual_seed(0))
        x0 = channels_last(x0) if layout == "channels_last" else x0
        got, want = _value_grad_gradgrad(new, x0), _value_grad_gradgrad(ref, x0)
        for g, w in zip(got, want, strict=True):
            if dtype == torch.float64:
                torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
            else:  # the first axis of a volume runs as a banded matmul: float32 rounding only
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6 * float(w.abs().max()))


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("name", ["up", "down", "blur", "blur_gain"])
def test_fir_gradcheck_and_gradgradcheck(nd: int, name: str) -> None:
    new, _ = _ops(nd)[name]
    x = torch.randn(1, 2, *([5] * nd), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(new, (x,))
    assert torch.autograd.gradgradcheck(new, (x,))


@pytest.mark.parametrize("nd", DIMS)
def test_fir_adjoint_identity(nd: int) -> None:
    """<A x, y> = <x, Aᵀ y> with Aᵀ from the backward, for odd sizes too (the stride floors a sample away)."""
    for name, (new, _) in _ops(nd).items():
        x = torch.randn(2, 3, *([7] * nd), dtype=torch.float64, requires_grad=True)
        y = new(x)
        v = torch.randn_like(y)
        (at_v,) = torch.autograd.grad(y, x, v)
        lhs, rhs = float((y * v).sum().detach()), float((x * at_v).sum())
        assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), name


def test_fir_saves_no_tensors_for_backward() -> None:
    saved: list[torch.Tensor] = []
    x = torch.randn(2, 4, 6, 6, 6, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = downsample_fir(blur_fir(upsample_fir(x, 3), 3, pad=2), 3)
    assert saved == []
    y.sum().backward()
    assert x.grad is not None


class _OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def test_fir_makes_no_tensor_per_call() -> None:
    """The kernels are cached per (device, dtype, gain, channels): a call makes no tensor from host data and
    reads nothing back, and runs one forward convolution per pass (no backward-data kernel)."""
    x = channels_last(torch.randn(2, 4, 6, 6, 6))
    host = {"aten._to_copy", "aten.lift_fresh", "aten.lift_fresh_copy", "aten._local_scalar_dense"}
    for op in (lambda t: upsample_fir(t, 3), lambda t: blur_fir(t, 3, pad=2), lambda t: downsample_fir(t, 3)):
        op(x)  # fills the cache
        with _OpCounter() as counter:
            op(x)
        assert not set(counter.ops) & host, counter.ops
        assert counter.ops["aten.convolution"] == 3, counter.ops
        assert "aten.convolution_backward" not in counter.ops


def _r1_op_count(channels: int, fir: bool = True, ops: str | None = None) -> int:
    """Ops of an R1-style double backward through a blur and a downsampling."""
    x = torch.randn(2, channels, 8, 8, 8, requires_grad=True)
    blur = (lambda t: blur_fir(t, 3, pad=2)) if fir else (lambda t: _reference(t, 3, 1.0, 1, 2, False))
    down = (lambda t: downsample_fir(t, 3)) if fir else (lambda t: _reference(t, 3, 1.0, 2, 1, False))
    with _OpCounter() as counter:
        y = down(blur(x).square())
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        g.square().sum().backward()
    return counter.ops[ops] if ops else sum(counter.ops.values())


def test_fir_double_backward_op_count_does_not_grow_with_channels() -> None:
    _r1_op_count(2), _r1_op_count(16)  # fill the kernel caches
    assert _r1_op_count(2) == _r1_op_count(16)
    assert _r1_op_count(2, ops="aten.convolution_backward") == 0  # adjoints run as forward convolutions
    assert _r1_op_count(16, fir=False) > 2 * _r1_op_count(2, fir=False)  # the per-group loop it replaces
