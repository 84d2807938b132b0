"""Primitive layers, each in 2D and 3D, against independent computations or known answers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from medgan3d.networks.layers import (
    Conv,
    MinibatchStd,
    bias_act,
    blur_fir,
    channel_shuffle,
    channel_unshuffle,
    channels_last,
    conv_fn,
    downsample_fir,
    join_branches,
    modulated_conv,
    pointwise_conv,
    upsample_fir,
)

DIMS = [2, 3]


def _interior(x: torch.Tensor, margin: int) -> torch.Tensor:
    index = (slice(None), slice(None)) + (slice(margin, -margin),) * (x.ndim - 2)
    return x[index]


@pytest.mark.parametrize("nd", DIMS)
def test_upsample_keeps_constant_and_doubles_shape(nd: int) -> None:
    x = torch.full((2, 3, *([6] * nd)), 2.5)
    y = upsample_fir(x, nd)
    assert y.shape == (2, 3, *([12] * nd))
    # Gain up**nd: a constant stays constant away from the zero-padded border (3DStyleGAN's up**2 gives 1.25).
    torch.testing.assert_close(_interior(y, 2), torch.full_like(_interior(y, 2), 2.5))


@pytest.mark.parametrize("nd", DIMS)
def test_up_then_down_preserves_constant(nd: int) -> None:
    x = torch.full((1, 2, *([8] * nd)), -0.75)
    y = downsample_fir(upsample_fir(x, nd), nd)
    assert y.shape == x.shape
    torch.testing.assert_close(_interior(y, 2), torch.full_like(_interior(y, 2), -0.75))


@pytest.mark.parametrize("nd", DIMS)
def test_fir_filter_is_separable_1331(nd: int) -> None:
    """The separable passes equal one dense convolution with the outer product of [1,3,3,1]/8."""
    x = torch.randn(1, 1, *([9] * nd))
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8
    dense = taps
    for _ in range(nd - 1):
        dense = dense.unsqueeze(-1) * taps
    expected = conv_fn(nd)(x, dense.reshape(1, 1, *dense.shape), padding=2)
    torch.testing.assert_close(blur_fir(x, nd, pad=2), expected)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("groups", [1, 2])
def test_demodulated_conv_keeps_unit_variance(nd: int, groups: int) -> None:
    torch.manual_seed(0)
    c = 64
    size = 24 if nd == 2 else 12
    x = torch.randn(4, c, *([size] * nd))
    weight = torch.randn(c, c // groups, *([3] * nd))
    styles = torch.rand(4, c) * 2 + 0.1  # arbitrary positive styles: demodulation must undo their scale
    y = modulated_conv(x, weight, styles, nd, groups=groups)
    std = _interior(y, 1).std().item()
    assert abs(std - 1.0) < 0.05, std
    undemod = modulated_conv(x, weight, styles, nd, demodulate=False, groups=groups)
    assert _interior(undemod, 1).std().item() > 2.0  # the check above is not vacuous


def _naive_modulated(x, weight, styles, nd, groups, up):  # type: ignore[no-untyped-def]
    """Per-sample reference: modulate, demodulate per branch, then (zero-insert, conv, blur) or conv."""
    outs = []
    for n in range(x.shape[0]):
        w = weight.clone()
        cin_g = w.shape[1]
        cout_g = w.shape[0] // groups
        for g in range(groups):
            s = styles[n, g * cin_g : (g + 1) * cin_g].reshape(1, cin_g, *([1] * nd))
            wg = w[g * cout_g : (g + 1) * cout_g] * s
            wg = wg / torch.sqrt(wg.square().sum(dim=tuple(range(1, wg.ndim)), keepdim=True) + 1e-8)
            w[g * cout_g : (g + 1) * cout_g] = wg
        xi = x[n : n + 1]
        if up:
            z = torch.zeros(1, xi.shape[1], *[2 * s for s in xi.shape[2:]], dtype=xi.dtype)
            z[(slice(None), slice(None)) + (slice(0, None, 2),) * nd] = xi
            # full correlation of the zero-inserted input (its last sample is always 0), then the 4-tap FIR
            # with one zero before: output o averages correlation samples o-1 .. o+2
            c = conv_fn(nd)(z, w, padding=2, groups=groups)
            y = blur_fir(F.pad(c, [1, 0] * nd), nd, pad=0, gain=2.0**nd)
        else:
            y = conv_fn(nd)(xi, w, padding=1, groups=groups)
        outs.append(y)
    return torch.cat(outs)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("up", [False, True])
def test_grouped_modulated_conv_matches_per_sample_reference(nd: int, groups: int, up: bool) -> None:
    torch.manual_seed(1)
    x = torch.randn(3, 8, *([5] * nd))
    weight = torch.randn(6, 8 // groups, *([3] * nd))
    styles = torch.randn(3, 8)
    got = modulated_conv(x, weight, styles, nd, groups=groups, up=up)
    torch.testing.assert_close(got, _naive_modulated(x, weight, styles, nd, groups, up), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("up", [False, True])
def test_fused_modulated_conv_in_channels_last_matches_float64_reference(
    nd: int, groups: int, up: bool
) -> None:
    """The fused conv runs channels-last (input reshaped to [1, N·C], weight channels-last): float32 values and
    gradients stay within float32 rounding of the float64 per-sample reference, and the output reshapes back
    to [1, N·C] channels-last as a view (the next layer copies nothing)."""
    torch.manual_seed(3)
    x0 = channels_last(torch.randn(1, 3 * 8, *([6] * nd))).reshape(3, 8, *([6] * nd))
    w0, s0 = torch.randn(6, 8 // groups, *([3] * nd)), torch.randn(3, 8)
    grads = []
    for dtype in (torch.float32, torch.float64):
        x, w, s = (t.to(dtype, copy=True).requires_grad_() for t in (x0, w0, s0))
        y = modulated_conv(x, w, s, nd, groups=groups, up=up, fused=True)
        ref = _naive_modulated(x.detach().double(), w0.double(), s0.double(), nd, groups, up)
        torch.testing.assert_close(y.detach().double(), ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
        grads.append(torch.autograd.grad(y.square().sum(), [x, w, s]))
        if dtype == torch.float32:
            flat = y.reshape(1, -1, *y.shape[2:])
            assert flat.data_ptr() == y.data_ptr() and flat.is_contiguous(memory_format=_CL[nd])
    for g32, g64 in zip(*grads, strict=True):
        torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-5 * float(g64.abs().max()))


_CL = {2: torch.channels_last, 3: torch.channels_last_3d}


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_pointwise_conv_equals_1x1_convolution(nd: int, layout: str) -> None:
    """fromRGB, D's skip and S&S-D's 1^n branch run as a matmul over the channels: equal to the 1^n conv in
    value and gradient (float64 to 1e-12; float32 to its rounding), channels-last in, channels-last out."""
    torch.manual_seed(5)
    for c_in in (1, 6):
        x0 = torch.randn(2, c_in, *([5] * nd), dtype=torch.float64)
        x0 = channels_last(x0) if layout == "channels_last" else x0
        w, b = torch.randn(4, c_in, *([1] * nd), dtype=torch.float64), torch.randn(4, dtype=torch.float64)
        x = x0.clone().requires_grad_()
        got, want = pointwise_conv(x, w, b), conv_fn(nd)(x, w, b)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        (g_got,), (g_want,) = torch.autograd.grad(got.sum(), x), torch.autograd.grad(want.sum(), x)
        torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(pointwise_conv(x0.float(), w.float()), conv_fn(nd)(x0.float(), w.float()))
        if layout == "channels_last":
            assert got.is_contiguous(memory_format=_CL[nd])


def _bias_act_shuffle_autograd(x: torch.Tensor, bias: torch.Tensor, g: float) -> torch.Tensor:
    """The previous bias_act(shuffle=True): the same add, autograd's own backward (a transposing copy)."""
    n, c = x.shape[:2]
    xv = x.reshape(n, 2, c // 2, *x.shape[2:]).transpose(1, 2)
    bv = (bias * g).reshape(2, c // 2).t().contiguous().reshape(1, c // 2, 2, *([1] * (x.ndim - 2)))
    return F.leaky_relu_(torch.add(bv, xv, alpha=g), 0.2).reshape(x.shape)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "batch_in_channels"])
def test_bias_act_shuffle_backward_is_autograds_bit_for_bit(nd: int, layout: str) -> None:
    """The shuffle's own backward (one pass, in the input's layout) gives autograd's values, gradients and
    double gradients bit for bit, and the input gradient keeps the input's layout."""
    torch.manual_seed(6)
    x0 = torch.randn(3, 8, *([5] * nd))
    if layout == "channels_last":
        x0 = channels_last(x0)
    elif layout == "batch_in_channels":  # G's fused conv output: [1, N·C] channels-last seen as [N, C]
        x0 = channels_last(x0.reshape(1, 24, *x0.shape[2:])).reshape(x0.shape)
    bias0 = torch.randn(8)
    results = []
    for op in (
        lambda x, b: bias_act(x, b, "lrelu", shuffle=True),
        lambda x, b: _bias_act_shuffle_autograd(x, b, 2**0.5),
    ):
        x, bias = x0.clone().requires_grad_(), bias0.clone().requires_grad_()
        y = op(x, bias)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1))
        gx, gb = torch.autograd.grad((y * w).sum(), [x, bias], create_graph=True)
        ggx, ggb = torch.autograd.grad(gx.square().sum() + gb.square().sum(), [x, bias])
        results.append([y, gx, gb, ggx, ggb])
    assert results[0][1].stride() == x0.stride()  # autograd's own backward returns it contiguous
    for got, want in zip(*results, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("nd", DIMS)
def test_channel_shuffle_is_permutation_and_unshuffle_inverts(nd: int) -> None:
    x = torch.arange(2 * 8).float().reshape(2, 8, *([1] * nd)).expand(2, 8, *([3] * nd)).contiguous()
    y = channel_shuffle(x, 2)
    assert not torch.equal(y, x)
    # a permutation: same multiset of channels in every sample
    first = (slice(None), slice(None)) + (0,) * nd
    assert torch.equal(y[first].sort(dim=1).values, x[first].sort(dim=1).values)
    # interleaving: [a0 a1 a2 a3 b0 b1 b2 b3] -> [a0 b0 a1 b1 ...]
    assert y[first][0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    torch.testing.assert_close(channel_unshuffle(y, 2), x)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("down", [1, 2])
def test_split_shuffle_d_conv_equals_two_branches(nd: int, down: int) -> None:
    """S&S-D runs as one grouped conv; it must equal a k^n branch and a 1^n branch computed separately."""
    torch.manual_seed(2)
    conv = Conv(8, 8, 3, nd, variant="split", down=down)
    x = torch.randn(2, 8, *([8] * nd))
    got = conv(x)
    xa, xb = x[:, :4], x[:, 4:]
    wa = conv.weight / math.sqrt(4 * 3**nd)
    wb = conv.weight_1x1 / math.sqrt(4)
    if down == 2:
        xa_b = blur_fir(xa, nd, pad=2)
        ya = conv_fn(nd)(xa_b, wa, stride=2)
        # the 1^n branch sees the same blurred grid, centre-aligned with the 3^n branch
        yb = conv_fn(nd)(_interior(blur_fir(xb, nd, pad=2), 1), wb, stride=2)
    else:
        ya = conv_fn(nd)(xa, wa, padding=1)
        yb = conv_fn(nd)(xb, wb)
    torch.testing.assert_close(got, torch.cat([ya, yb], dim=1), atol=1e-5, rtol=1e-5)
    shuffled = Conv(8, 8, 3, nd, variant="split_shuffle", down=down)
    shuffled.load_state_dict(conv.state_dict())
    torch.testing.assert_close(shuffled(x), channel_shuffle(got, 2))


@pytest.mark.parametrize("nd", DIMS)
def test_strided_1x1_conv_equals_blur_then_stride_2(nd: int) -> None:
    """D's skip (1^n, down=2) runs the FIR downsampling, then the 1^n conv: the samples of StyleGAN2's
    blur(pad 1) + stride-2 conv, in value and gradient (float64 exact to rounding)."""
    torch.manual_seed(4)
    conv = Conv(6, 8, 1, nd, bias=False, down=2).double()
    x = channels_last(torch.randn(2, 6, *([9] * nd), dtype=torch.float64)).requires_grad_()
    got = conv(x, gain=0.5)
    w = conv.weight / math.sqrt(6) * 0.5
    want = conv_fn(nd)(blur_fir(x, nd, pad=1), w, stride=2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    v = torch.randn_like(got)
    (g_got,) = torch.autograd.grad(got, x, v)
    (g_want,) = torch.autograd.grad(want, x, v)
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", DIMS)
def test_minibatch_std_known_answer(nd: int) -> None:
    x = torch.zeros(4, 2, *([3] * nd))
    x[1] = 2.0  # per group of 4: values 0,2,0,0 -> population std sqrt(0.75) in every position
    y = MinibatchStd(group_size=4, num_channels=1)(x)
    assert y.shape == (4, 3, *([3] * nd))
    torch.testing.assert_close(y[:, 2], torch.full_like(y[:, 2], math.sqrt(0.75)), atol=1e-4, rtol=1e-4)
    inter = MinibatchStd(group_size=4, num_channels=2, interleave=True)(x)
    assert inter.shape == (4, 4, *([3] * nd))
    torch.testing.assert_close(inter[:, [0, 2]], x)  # features stay in their branch, std after each
    with pytest.raises(ValueError, match="divide"):
        MinibatchStd(group_size=4)(torch.zeros(6, 2, *([3] * nd)))


@pytest.mark.parametrize("activation", ["lrelu", "linear"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_act_matches_formula_and_keeps_input(activation: str, with_bias: bool) -> None:
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    b = torch.randn(3) if with_bias else None
    before = x.detach().clone()
    y = bias_act(x, b, activation, gain=0.7)
    ref = x + b.reshape(1, 3, 1, 1) if b is not None else x
    ref = F.leaky_relu(ref, 0.2) * math.sqrt(2) * 0.7 if activation == "lrelu" else ref * 0.7
    torch.testing.assert_close(y, ref)
    assert torch.equal(x.detach(), before)  # never modifies its input
    y.sum().backward()  # in-place ops stay differentiable
    assert x.grad is not None


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("up", [False, True])
def test_nonfused_modulated_conv_equals_fused(nd: int, groups: int, up: bool) -> None:
    """x·s → dense conv → ·demod (StyleGAN2-ADA's training form) equals the grouped per-sample-weight conv,
    values and gradients, and both equal the per-sample reference."""
    torch.manual_seed(3)
    x = torch.randn(3, 8, *([5] * nd), dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 8 // groups, *([3] * nd), dtype=torch.float64, requires_grad=True)
    styles = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
    outs = []
    for fused in (True, False):
        y = modulated_conv(x, weight, styles, nd, groups=groups, up=up, fused=fused)
        outs.append([y, *torch.autograd.grad(y.square().sum(), [x, weight, styles])])
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    reference = _naive_modulated(x.float(), weight.float(), styles.float(), nd, groups, up).double()
    torch.testing.assert_close(outs[1][0], reference, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("activation", ["lrelu", "linear"])
def test_bias_act_shuffle_writes_the_shuffle_in_its_own_pass(nd: int, layout: str, activation: str) -> None:
    x = torch.randn(2, 8, *([3] * nd), requires_grad=True)
    xin = channels_last(x) if layout == "channels_last" else x
    b = torch.randn(8)
    got = bias_act(xin, b, activation, gain=0.7, shuffle=True)
    want = channel_shuffle(bias_act(xin, b, activation, gain=0.7), 2)
    assert torch.equal(got, want)
    assert got._base is not None and got._base.numel() == got.numel()  # a view of the add's output: no copy
    (g1,) = torch.autograd.grad(got.square().sum(), x)
    (g2,) = torch.autograd.grad(want.square().sum(), x)
    assert torch.equal(g1, g2)


@pytest.mark.parametrize("nd", DIMS)
@pytest.mark.parametrize("interleave", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_join_branches_is_cat_or_shuffle_and_keeps_layout(nd: int, interleave: bool, layout: str) -> None:
    a, b = torch.randn(2, 4, *([3] * nd)), torch.randn(2, 4, *([3] * nd))
    if layout == "channels_last":
        a, b = channels_last(a), channels_last(b)
    got = join_branches(a, b, interleave)
    cat = torch.cat([a, b], dim=1)
    assert torch.equal(got, channel_shuffle(cat, 2) if interleave else cat)
    assert got.is_contiguous() == (layout == "contiguous")
