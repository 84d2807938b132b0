"""Dimension-generic StyleGAN2 primitives (one implementation for ``spatial_dims`` 2 and 3).

Liu et al., arXiv 2208.03934 §3.1 (StyleGAN2 recap, Eq. 1–2) and §3.3 (Split&Shuffle, Fig. 3); Hong et al., DGM4MICCAI 2021 (StyleGAN2 lifted to 3D).
Tensors are ``[N, C, *spatial]`` with ``spatial = (D, H, W)`` in 3D and ``(H, W)`` in 2D.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def conv_fn(spatial_dims: int) -> Callable[..., Tensor]:
    """``F.conv2d`` or ``F.conv3d``."""
    return {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[spatial_dims]


def conv_transpose_fn(spatial_dims: int) -> Callable[..., Tensor]:
    """``F.conv_transpose2d`` or ``F.conv_transpose3d``."""
    return {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[spatial_dims]


def bias_act(
    x: Tensor, bias: Tensor | None, activation: str, gain: float = 1.0, shuffle: bool = False
) -> Tensor:
    """Add a per-channel bias, then ``linear`` or ``lrelu`` (slope 0.2, gain √2), then an extra gain.

    Computed as ``lrelu(g·x + g·b)`` (equal for g > 0) in two passes and one allocation: elementwise work is a
    large share of a CPU step, the more so once Split&Shuffle halves the convolutions. ``shuffle=True``
    returns ``channel_shuffle`` of the result, written by the same add (its output takes the layout of the
    bias laid out in interleaved order), so the shuffle costs no copy; its backward un-shuffles the gradient
    in one pass into the input's layout (:class:`_ShuffleAdd`).
    """
    if activation not in ("lrelu", "linear"):
        raise ValueError(f"unknown activation {activation!r}")
    g = gain * (LRELU_GAIN if activation == "lrelu" else 1.0)
    if shuffle:
        if bias is None:
            raise ValueError("bias_act(shuffle=True) needs a bias")
        c = x.shape[1]
        ones = [1] * (x.ndim - 2)
        bv = (bias * g).reshape(2, c // 2).t().contiguous().reshape(1, c // 2, 2, *ones)
        y = _ShuffleAdd.apply(x, bv, g)  # [N, C/2, 2, *S]: interleaved order
        if activation == "lrelu":
            F.leaky_relu_(y, LRELU_SLOPE)  # on the fresh tensor, before the view below
        return y.reshape(x.shape)
    if bias is not None:
        x = torch.add(bias.reshape(1, -1, *([1] * (x.ndim - 2))) * g, x, alpha=g)
    elif g != 1.0:
        x = x * g
    elif activation == "lrelu":
        x = x.clone()
    return F.leaky_relu_(x, LRELU_SLOPE) if activation == "lrelu" else x


def _interleaved_view(x: Tensor) -> Tensor:
    """``[N, C, *S]`` as ``[N, C/2, 2, *S]`` in interleaved order: element ``[n, i, b]`` is channel ``b·C/2 + i``."""
    n, c = x.shape[:2]
    return x.reshape(n, 2, c // 2, *x.shape[2:]).transpose(1, 2)


def _geometry(x: Tensor) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shape and the strides ``empty_like(x)`` would get (``x``'s own where it is dense), without allocating."""
    return tuple(x.shape), torch.empty_like(x, device="meta").stride()


class _Unshuffle(torch.autograd.Function):
    """``gain ×`` the inverse channel shuffle of an interleaved ``[N, C/2, 2, *S]`` tensor, written in one pass
    into an ``[N, C, *S]`` tensor of the strides ``x_stride`` (the layout of the tensor that was shuffled).

    Its backward is the shuffle (times ``gain``) through :class:`_Shuffle`, written in the strides
    ``y_stride`` of the shuffled tensor, so every order of gradient works and every gradient keeps the layout
    of the activation it belongs to (elementwise backward kernels on mismatched layouts ran 3x slower).
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        y: Tensor,
        gain: float,
        x_geometry: tuple[tuple[int, ...], tuple[int, ...]],
        y_geometry: tuple[tuple[int, ...], tuple[int, ...]],
    ) -> Tensor:
        ctx.args = gain, y_geometry, x_geometry  # type: ignore[attr-defined]  # autograd's ctx carries them
        out = torch.empty_strided(*x_geometry, dtype=y.dtype, device=y.device)
        torch.mul(y, gain, out=_interleaved_view(out))
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        return _Shuffle.apply(grad, *ctx.args), None, None, None  # type: ignore[attr-defined]  # autograd's ctx carries them


class _Shuffle(torch.autograd.Function):
    """``gain ×`` the channel shuffle of ``[N, C, *S]`` as ``[N, C/2, 2, *S]`` of the strides ``y_geometry``."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        gain: float,
        y_geometry: tuple[tuple[int, ...], tuple[int, ...]],
        x_geometry: tuple[tuple[int, ...], tuple[int, ...]],
    ) -> Tensor:
        ctx.args = gain, x_geometry, y_geometry  # type: ignore[attr-defined]  # autograd's ctx carries them
        out = torch.empty_strided(*y_geometry, dtype=x.dtype, device=x.device)
        return torch.mul(_interleaved_view(x), gain, out=out)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        return _Unshuffle.apply(grad, *ctx.args), None, None, None  # type: ignore[attr-defined]  # autograd's ctx carries them


class _ShuffleAdd(torch.autograd.Function):
    """``bias + gain · channel_shuffle(x)`` as ``[N, C/2, 2, *S]`` (bias ``[1, C/2, 2, 1..]``), one pass each way.

    The forward is the add of :func:`bias_act` (its output takes the interleaved order). Autograd's own
    backward of that add wrote the input gradient in the interleaved order and then copied it back to the
    input's order (a transposing copy of a whole feature map, channels-last or not); this backward writes it
    in the input's layout in one pass (:class:`_Unshuffle`), with the same values, and the bias gradient as
    autograd sums it.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, bias: Tensor, gain: float) -> Tensor:
        y = torch.add(bias, _interleaved_view(x), alpha=gain)
        ctx.args, ctx.bias_shape = (gain, _geometry(x), _geometry(y)), bias.shape  # type: ignore[attr-defined]  # autograd's ctx carries them
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        gx = _Unshuffle.apply(grad, *ctx.args)  # type: ignore[attr-defined]  # autograd's ctx carries them
        return gx, grad.sum_to_size(ctx.bias_shape), None  # type: ignore[attr-defined]  # autograd's ctx carries them


# --------------------------------------------------------------------------------------------------
# FIR resampling with the separable [1, 3, 3, 1] filter
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pass:
    """One separable FIR pass along ``axis`` with the 4 taps × ``gain``.

    ``up=False``: pad ``pad`` zeros on each side, correlate, keep every ``stride``-th sample (a depthwise
    convolution). ``up=True``: insert ``stride − 1`` zeros between samples, correlate, crop ``pad`` from each
    side (a depthwise transposed convolution) to ``length`` samples; ``length`` is needed where the pass is
    the adjoint of a strided pass, whose output length is floored.
    """

    axis: int
    up: bool
    stride: int
    pad: int
    gain: float
    length: int | None = None

    def adjoint(self, n_in: int) -> _Pass:
        """The adjoint (transpose) of this pass run on an axis of ``n_in`` samples (the taps are symmetric)."""
        if self.up:
            return replace(self, up=False, length=None)
        return replace(self, up=True, length=n_in)


_TAPS: dict[tuple[torch.device, torch.dtype, float, int], Tensor] = {}


def _fir_kernel(device: torch.device, dtype: torch.dtype, gain: float, channels: int) -> Tensor:
    """The normalised 1D filter times ``gain`` as a depthwise ``[C, 1, 4, 1]`` kernel, made once per
    (device, dtype, gain, C): no copy or sync per call."""
    key = (device, dtype, gain, channels)
    kernel = _TAPS.get(key)
    if kernel is None:
        with torch.inference_mode(False), torch.no_grad():
            taps = torch.tensor(FIR_TAPS, dtype=dtype)
            taps = (taps / taps.sum() * gain).reshape(1, 1, len(FIR_TAPS), 1).repeat(channels, 1, 1, 1)
            kernel = taps.to(device)
        _TAPS[key] = kernel
    return kernel


def channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last layout (oneDNN's depthwise FIR passes run ~2x faster in it, copies included)."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.ndim)
    return x.contiguous(memory_format=fmt) if fmt is not None else x


def _as_planes(x: Tensor, axis: int) -> tuple[Tensor, bool]:
    """A channels-last 4D view of ``x`` with the pass axis as dim 2 (``True``) or dim 3 (``False``).

    Every pass then is one 2D depthwise convolution with a ``4×1`` or ``1×4`` kernel, the case oneDNN runs
    fastest: in 3D a ``4×1×1`` depthwise kernel goes to aten's im2col fallback, and ``1×4×1``/``1×1×4`` ones
    ran 1.3–3× slower than the same pass on a 2D view (``torch.profiler``, 32×64×64 volumes).
    """
    nd = x.ndim - 2
    if nd == 1:
        return x.unsqueeze(-1), True
    x = channels_last(x)
    if nd == 2:
        return x, axis == 0
    n, c, d, h, w = x.shape
    xl = x.permute(0, 2, 3, 4, 1)  # [N, D, H, W, C]: contiguous
    if axis == 0:
        return xl.reshape(n, d, h * w, c).permute(0, 3, 1, 2), True
    return xl.reshape(n * d, h, w, c).permute(0, 3, 1, 2), axis == 1


def _from_planes(y: Tensor, like: Tensor, axis: int, length: int) -> Tensor:
    """Undo :func:`_as_planes` for an output whose pass axis now has ``length`` samples."""
    nd = like.ndim - 2
    if nd == 1:
        return y.squeeze(-1)
    if nd == 2:
        return y
    n, c, d, h, w = like.shape
    shape = [d, h, w]
    shape[axis] = length
    yl = channels_last(y).permute(0, 2, 3, 1)  # [B, L, M, C]: contiguous
    return yl.reshape(n, *shape, c).permute(0, 4, 1, 2, 3)


def _run_pass(x: Tensor, p: _Pass) -> Tensor:
    """One pass as a forward depthwise convolution (a transposed pass: zero insertion, then one)."""
    k, c, dim = len(FIR_TAPS), x.shape[1], 2 + p.axis
    n_in = x.shape[dim]
    planes, first = _as_planes(x, p.axis)
    kernel = _fir_kernel(x.device, x.dtype, p.gain, c)
    if not first:
        kernel = kernel.transpose(2, 3)

    def conv(v: Tensor, stride: int, pad: int) -> Tensor:
        return F.conv2d(
            v,
            kernel,
            stride=(stride, 1) if first else (1, stride),
            padding=(pad, 0) if first else (0, pad),
            groups=c,
        )

    if not p.up:
        y = conv(planes, p.stride, p.pad)
        n_out = (n_in + 2 * p.pad - k) // p.stride + 1
    else:
        n_out = p.length if p.length is not None else (n_in - 1) * p.stride - 2 * p.pad + k
        if p.pad > k - 1:
            raise ValueError(f"FIR up pass with pad {p.pad} > {k - 1}")
        if p.stride == 1 and n_out == n_in + k - 1 - 2 * p.pad:
            y = conv(planes, 1, k - 1 - p.pad)  # the adjoint of a stride-1 pass: itself with pad k−1−pad
        else:
            pdim = 2 if first else 3
            shape = list(planes.shape)
            shape[pdim] = n_out + k - 1
            u = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last).zero_()
            idx = [slice(None)] * 4
            start = k - 1 - p.pad
            idx[pdim] = slice(start, start + p.stride * (n_in - 1) + 1, p.stride)
            u[tuple(idx)] = planes
            y = conv(u, 1, 0)
    return _from_planes(y, x, p.axis, n_out)


class _FIR(torch.autograd.Function):
    """A linear FIR resampling operator: nothing saved for backward, whose backward is its adjoint.

    The backward runs the adjoint passes in reverse order through this same Function, so gradients of every
    order are forward FIR passes too (R1 and path-length regularisation differentiate through them twice):
    no aten double backward of a depthwise (groups = channels) convolution, which loops over the groups, and
    no oneDNN backward-data kernel, which measured 3–10x slower than the forward one for these filters.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor, passes: tuple[_Pass, ...]) -> Tensor:
        adjoint = []
        for p in passes:
            adjoint.append(p.adjoint(x.shape[2 + p.axis]))
            x = _run_pass(x, p)
        ctx.adjoint = tuple(reversed(adjoint))  # type: ignore[attr-defined]  # autograd's ctx carries the adjoint passes
        return x

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        return _FIR.apply(grad, ctx.adjoint), None  # type: ignore[attr-defined]  # autograd's ctx carries the adjoint passes


def fir_resample(
    x: Tensor, spatial_dims: int, stride: int, pad: int, gain: float, up: bool = False
) -> Tensor:
    """The separable [1, 3, 3, 1] filter (total gain ``gain``) along every spatial axis, as one linear op.

    ``up=False``: pad by ``pad`` zeros, filter, keep every ``stride``-th sample. ``up=True``: insert
    ``stride − 1`` zeros between samples, filter, crop ``pad`` from each side (a transposed convolution).
    """
    axis_gain = gain ** (1.0 / spatial_dims)
    passes = tuple(_Pass(axis, up, stride, pad, axis_gain) for axis in range(spatial_dims))
    # Channels-last outside the Function (oneDNN's depthwise passes run ~2x faster in it): the gradient goes
    # back to the caller's layout through the layout change's own backward.
    return _FIR.apply(channels_last(x), passes)


def upsample_fir(x: Tensor, spatial_dims: int) -> Tensor:
    """×2 upsampling of every spatial dim: zero insertion then the FIR filter with gain ``2**spatial_dims``.

    Each axis is a depthwise transposed convolution with gain 2, so the total gain is ``2**spatial_dims``:
    zero insertion keeps one sample in ``2**spatial_dims``, and a unit-sum filter must be scaled by that
    count for a constant signal to stay constant. Hong et al.'s 3D-StyleGAN (DGM4MICCAI 2021; its
    ``upfirdn_3d.upsample_3d``) keeps StyleGAN2's 2D gain ``factor**2 = 4`` in 3D, which halves every
    up-sampled signal; weights trained with it need their up-sampling gain matched before a parity check.
    """
    return fir_resample(x, spatial_dims, stride=2, pad=1, gain=2.0**spatial_dims, up=True)


def downsample_fir(x: Tensor, spatial_dims: int) -> Tensor:
    """×2 downsampling of every spatial dim: FIR low-pass (gain 1) then keep every other sample."""
    return fir_resample(x, spatial_dims, stride=2, pad=1, gain=1.0)


def blur_fir(x: Tensor, spatial_dims: int, pad: int, gain: float = 1.0) -> Tensor:
    """FIR low-pass of every spatial dim with ``pad`` zeros on each side (output grows by ``2*pad - 3``)."""
    return fir_resample(x, spatial_dims, stride=1, pad=pad, gain=gain)


# --------------------------------------------------------------------------------------------------
# Channel shuffle (ShuffleNet-style), the "Shuffle" of Split&Shuffle (Liu et al., arXiv 2208.03934 §3.3)
# --------------------------------------------------------------------------------------------------


def channel_shuffle(x: Tensor, groups: int = 2) -> Tensor:
    """Interleave the channels of ``groups`` branches: [a0 a1 .. b0 b1 ..] -> [a0 b0 a1 b1 ..]."""
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


def join_branches(a: Tensor, b: Tensor, interleave: bool) -> Tensor:
    """``cat([a, b], 1)``, or ``channel_shuffle`` of it when ``interleave``, in one copy and in the layout of
    ``a`` (channels-last stays channels-last)."""
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}.get(a.ndim)
    if fmt is not None and not a.is_contiguous() and a.is_contiguous(memory_format=fmt):
        perm = (0, *range(2, a.ndim), 1)  # [N, *S, C]: the memory order of a channels-last tensor
        y = torch.stack([a.permute(perm), b.permute(perm)], dim=-1 if interleave else -2).flatten(-2)
        return y.permute(0, a.ndim - 1, *range(1, a.ndim - 1))
    return torch.stack([a, b], dim=2 if interleave else 1).flatten(1, 2)


def channel_unshuffle(x: Tensor, groups: int = 2) -> Tensor:
    """Inverse of :func:`channel_shuffle`."""
    n, c = x.shape[:2]
    return x.reshape(n, c // groups, groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


# --------------------------------------------------------------------------------------------------
# Equalized learning rate layers
# --------------------------------------------------------------------------------------------------


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalized learning rate (weights ~ N(0,1)/lr_mul, scaled at run time)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation)

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, act={self.activation}"


def pointwise_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """A 1^n convolution (``weight`` ``[C_out, C_in, 1..]``) as one matmul over the channels, in ``x``'s layout.

    aten sends a 1^n convolution of a batch under 16 on one thread to its im2col fallback, which also
    returns it contiguous (a layout copy in the next channels-last conv or FIR pass): on a channels-last
    volume the matmul measured 2–4.5x faster, forward and backward, with the same values.
    """
    if x.ndim < 4:
        return conv_fn(x.ndim - 2)(x, weight, bias)
    last = (0, *range(2, x.ndim), 1)
    y = F.linear(x.permute(last), weight.reshape(weight.shape[0], weight.shape[1]), bias)
    return y.permute(0, y.ndim - 1, *range(1, y.ndim - 1))


def _kernel_shape(kernel_size: int, spatial_dims: int) -> tuple[int, ...]:
    return (kernel_size,) * spatial_dims


def _center_pad(weight: Tensor, kernel_size: int) -> Tensor:
    """Zero-pad a ``1^n`` kernel to ``k^n`` with the tap at the centre (used to fuse S&S-D branches)."""
    p = (kernel_size - 1) // 2
    return F.pad(weight, [p, p] * (weight.ndim - 2))


D_VARIANTS = ("baseline", "group", "depthwise", "split", "split_shuffle")
G_VARIANTS = ("baseline", "split", "split_shuffle")


class Conv(nn.Module):
    """Equalized-lr convolution with the discriminator variants of Liu et al., arXiv 2208.03934 §3.3 / Table 3.

    ``variant``:
      * ``baseline``  — dense ``k^n`` convolution.
      * ``group``     — grouped convolution with ``groups`` groups (Group-D).
      * ``depthwise`` — depthwise ``k^n`` then pointwise ``1^n`` (Depthwise-D), one bias.
      * ``split`` / ``split_shuffle`` — Split&Shuffle-D (Fig. 3): half the channels through a ``k^n`` branch,
        half through a ``1^n`` branch. Both branches run as ONE grouped convolution (groups=2): the ``1^n``
        weights are zero-padded to ``k^n`` at run time, so the parameters are those of the two branches
        while the kernel is a single fast grouped conv. ``split_shuffle`` then interleaves the two halves.

    ``down=2`` low-passes the input with the FIR filter and convolves with stride 2 (StyleGAN2 D).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        spatial_dims: int,
        bias: bool = True,
        activation: str = "linear",
        down: int = 1,
        variant: str = "baseline",
        groups: int = 4,
    ) -> None:
        super().__init__()
        if variant not in D_VARIANTS:
            raise ValueError(f"unknown conv variant {variant!r}; expected one of {D_VARIANTS}")
        if variant != "baseline" and kernel_size == 1:
            variant = "baseline"  # 1x1 convs (fromRGB, skip) stay dense in every variant
        self.variant, self.spatial_dims, self.kernel_size = variant, spatial_dims, kernel_size
        self.activation, self.down = activation, down
        self.in_channels, self.out_channels = in_channels, out_channels
        ks = _kernel_shape(kernel_size, spatial_dims)
        one = _kernel_shape(1, spatial_dims)
        self.groups = {"group": groups, "split": 2, "split_shuffle": 2}.get(variant, 1)
        if in_channels % self.groups or out_channels % self.groups:
            raise ValueError(
                f"{variant} conv needs channels divisible by {self.groups}: {in_channels}->{out_channels}"
            )
        g = self.groups
        if variant in ("baseline", "group"):
            self.weight = nn.Parameter(torch.randn(out_channels, in_channels // g, *ks))
        elif variant == "depthwise":
            self.weight = nn.Parameter(torch.randn(in_channels, 1, *ks))
            self.pointwise = nn.Parameter(torch.randn(out_channels, in_channels, *one))
        else:
            self.weight = nn.Parameter(torch.randn(out_channels // 2, in_channels // 2, *ks))
            self.weight_1x1 = nn.Parameter(torch.randn(out_channels // 2, in_channels // 2, *one))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def fused_weight(self) -> Tensor:
        """The weight the convolution runs with, equalized-lr gains applied (one tensor, ``groups`` groups)."""
        fan_in = self.weight[0].numel()
        w = self.weight * (1.0 / math.sqrt(fan_in))
        if self.variant in ("split", "split_shuffle"):
            w1 = self.weight_1x1 * (1.0 / math.sqrt(self.weight_1x1[0].numel()))
            w = torch.cat([w, _center_pad(w1, self.kernel_size)], dim=0)
        return w

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        if self.variant in ("split", "split_shuffle"):
            return self._split_forward(x, gain)
        conv = conv_fn(self.spatial_dims)
        w = self.fused_weight().to(x.dtype)
        groups = x.shape[1] if self.variant == "depthwise" else self.groups
        if self.kernel_size == 1 and groups == 1:
            # a 1^n conv reads every other sample of the blur: the FIR downsampling computes only those
            x = pointwise_conv(downsample_fir(x, self.spatial_dims) if self.down == 2 else x, w)
        elif self.down == 2:
            x = blur_fir(x, self.spatial_dims, pad=(self.kernel_size + 1) // 2)
            x = conv(x, w, stride=2, groups=groups)
        else:
            x = conv(x, w, padding=self.kernel_size // 2, groups=groups)
        if self.variant == "depthwise":
            pw = self.pointwise * (1.0 / math.sqrt(self.pointwise[0].numel()))
            x = conv(x, pw.to(x.dtype))
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = bias_act(x, b, self.activation, gain)
        if self.variant == "split_shuffle":
            x = channel_shuffle(x, 2)
        return x

    def _split_forward(self, x: Tensor, gain: float) -> Tensor:
        """The two branches of Split&Shuffle-D, each at its own cost: the ``k^n`` conv on the first half of
        the channels, the ``1^n`` conv on the second (after ``down=2``: FIR downsampling, which equals the
        centre tap of the ``k^n`` grid), bias and gain folded into the convolutions, the activation in place,
        then ONE copy that writes both outputs side by side or interleaved (the shuffle)."""
        nd, k, half = self.spatial_dims, self.kernel_size, self.in_channels // 2
        g = gain * (LRELU_GAIN if self.activation == "lrelu" else 1.0)  # lrelu(g·y) = g·lrelu(y) for g > 0
        wa = (self.weight * (g / math.sqrt(self.weight[0].numel()))).to(x.dtype)
        wb = (self.weight_1x1 * (g / math.sqrt(self.weight_1x1[0].numel()))).to(x.dtype)
        ba, bb = (self.bias * g).to(x.dtype).chunk(2) if self.bias is not None else (None, None)
        conv = conv_fn(nd)
        xa, xb = x.split(half, dim=1)  # backward: one cat (a slice's backward zero-fills the whole input)
        if self.down == 2:
            ya = conv(blur_fir(xa, nd, pad=(k + 1) // 2), wa, ba, stride=2)
            yb = pointwise_conv(downsample_fir(xb, nd), wb, bb)
        else:
            ya = conv(xa, wa, ba, padding=k // 2)
            yb = pointwise_conv(xb, wb, bb)
        if self.activation == "lrelu":
            # in place on the fresh conv output: on the joined view, autograd would rebase the in-place op
            # through as_strided, whose backward zero-fills a gradient of the whole output; the 1^n branch is
            # a permuted view of its matmul's output, so not in place there (the same rebase)
            ya, yb = F.leaky_relu_(ya, LRELU_SLOPE), F.leaky_relu(yb, LRELU_SLOPE)
        return join_branches(ya, yb, interleave=self.variant == "split_shuffle")

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}->{self.out_channels}, k={self.kernel_size}, down={self.down}, "
            f"variant={self.variant}, act={self.activation}"
        )


# --------------------------------------------------------------------------------------------------
# Modulated convolution (Eq. 1–2) with the grouped-conv trick
# --------------------------------------------------------------------------------------------------


def _modulation(
    weight: Tensor, styles: Tensor, groups: int, demodulate: bool, eps: float
) -> tuple[Tensor, Tensor | None]:
    """Per-sample weights ``[N, g, Cout/g, Cin/g, k..]`` (Eq. 1) and the demodulation ``[N, Cout]`` (Eq. 2)."""
    n = styles.shape[0]
    c_out, c_in_g = weight.shape[:2]
    nd = weight.ndim - 2
    w = weight.reshape(1, groups, c_out // groups, c_in_g, *weight.shape[2:])
    w = w * styles.reshape(n, groups, 1, c_in_g, *([1] * nd))
    if not demodulate:
        return w, None
    d = torch.rsqrt(w.square().sum(dim=tuple(range(3, w.ndim)), keepdim=True) + eps)
    return w, d


def _transposed_weight(w: Tensor, groups: int, spatial_dims: int) -> Tensor:
    """``[B, g, Cout/g, Cin/g, k..]`` as a transposed-conv weight ``[B·Cin, Cout/g, k..]``, flipped so that the
    transposed convolution equals "insert zeros, then correlate with ``w``"."""
    b, _, c_out_g, c_in_g = w.shape[:4]
    w = w.transpose(2, 3).reshape(b * groups * c_in_g, c_out_g, *w.shape[4:])
    return w.flip(list(range(2, 2 + spatial_dims)))


_FUSED_DEFAULT: dict[str, bool] = {"cpu": True}


def fused_modconv_default(device: torch.device) -> bool:
    """Whether :func:`modulated_conv` runs fused (one grouped convolution) while autograd records on ``device``.

    CPU: fused, by measurement (``benchmarks/bench_modconv.py``, forward + backward of every synthesis layer:
    fused took 0.81x / 0.80x of the non-fused time summed over coca-baseline's / coca-ss's layers, the large
    layers deciding; whole Gmain phases were equal within noise; see docs/training.md). Other devices:
    non-fused while training, as StyleGAN2-ADA (Karras et al., NeurIPS 2020) does: one dense convolution runs
    on tensor-core kernels, a grouped one with groups = batch does not. Without autograd (inference) fused.
    """
    if not torch.is_grad_enabled():
        return True
    return _FUSED_DEFAULT.get(device.type, False)


def modulated_conv(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    spatial_dims: int,
    demodulate: bool = True,
    up: bool = False,
    groups: int = 1,
    eps: float = 1e-8,
    fused: bool | None = None,
) -> Tensor:
    """Modulated (Eq. 1) and optionally demodulated (Eq. 2) convolution.

    ``weight`` is ``[C_out, C_in/groups, k..]``; ``styles`` is ``[N, C_in]``. With ``groups=2`` every branch
    (Split, Liu et al., arXiv 2208.03934 §3.3) is modulated and demodulated over its own input channels only.
    ``fused=True`` folds the batch into the channel axis and runs ONE convolution with ``N*groups`` groups of
    per-sample weights; ``fused=False`` scales the input by the styles, runs one dense (``groups``-grouped)
    convolution with the shared weight and scales the output by the demodulation coefficients (equal up to
    float rounding); ``None`` takes :func:`fused_modconv_default`.
    ``up=True`` doubles every spatial dim: transposed stride-2 conv then the FIR filter (gain ``2**dims``).
    """
    n, c_in = styles.shape
    c_out, c_in_g = weight.shape[:2]
    k = weight.shape[2:]
    g = groups
    if fused is None:
        fused = fused_modconv_default(x.device)
    if not up and groups == 1 and math.prod(k) == 1:
        # 1^n kernels (toRGB) as a batched matmul: oneDNN's grouped 1^n conv with few outputs is ~10x slower.
        w, d = _modulation(weight, styles, 1, demodulate, eps)
        w = w if d is None else w * d
        y = torch.bmm(w.reshape(n, c_out, c_in), x.reshape(n, c_in, -1))
        return y.reshape(n, c_out, *x.shape[2:])
    if not fused:
        return _modulated_conv_nonfused(x, weight, styles, spatial_dims, demodulate, up, groups, eps)
    w, d = _modulation(weight, styles, g, demodulate, eps)
    if d is not None:
        w = w * d
    # Channels-last, the layout the FIR passes run in: after the first up-sampling layer the whole synthesis
    # network then stays in it ([1, N·C] channels-last reshapes to [N, C] and back as views), where a
    # contiguous conv output needed a layout copy before and after every FIR pass (forward and backward).
    # The (small) weight goes channels-last too: aten reads a reshaped [1, N·C] input as contiguous (its
    # size-1 batch axis has a small stride) and would convert it, input and gradient, in every convolution.
    # Not in float64, which has no oneDNN kernel to gain: aten's own grouped conv2d then returns a wrong
    # weight gradient for a channels-last weight with such an input (PyTorch 2.13, CPU).
    x = channels_last(x.reshape(1, n * c_in, *x.shape[2:]))
    wfmt = channels_last if x.dtype != torch.float64 else (lambda t: t)
    if not up:
        w = wfmt(w.reshape(n * c_out, c_in_g, *k))
        y = conv_fn(spatial_dims)(x, w, padding=k[0] // 2, groups=n * g)
    else:
        wt = wfmt(_transposed_weight(w, g, spatial_dims))
        y = conv_transpose_fn(spatial_dims)(x, wt, stride=2, groups=n * g)
        y = blur_fir(y, spatial_dims, pad=1, gain=2.0**spatial_dims)
    return y.reshape(n, c_out, *y.shape[2:])


def _modulated_conv_nonfused(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    spatial_dims: int,
    demodulate: bool,
    up: bool,
    groups: int,
    eps: float,
) -> Tensor:
    """x·s → one convolution with the shared weight → ·demodulation (StyleGAN2-ADA's training form)."""
    n, c_in = styles.shape
    c_out, k = weight.shape[0], weight.shape[2:]
    ones = [1] * spatial_dims
    xs = x * styles.reshape(n, c_in, *ones)
    if not up:
        y = conv_fn(spatial_dims)(xs, weight, padding=k[0] // 2, groups=groups)
    else:
        w = _transposed_weight(
            weight.reshape(1, groups, c_out // groups, *weight.shape[1:]), groups, spatial_dims
        )
        y = conv_transpose_fn(spatial_dims)(xs, w, stride=2, groups=groups)
        y = blur_fir(y, spatial_dims, pad=1, gain=2.0**spatial_dims)
    if demodulate:
        _, d = _modulation(weight, styles, groups, True, eps)
        y = y * d.reshape(n, c_out, *ones)  # type: ignore[union-attr]  # d is set when demodulating
    return y


class MinibatchStd(nn.Module):
    """Minibatch standard deviation layer (StyleGAN2 D epilogue, Liu et al., arXiv 2208.03934 §3.1).

    Appends ``num_channels`` feature maps, each the mean std over a group of ``group_size`` samples of one
    slice of the channels. With ``interleave=True`` the result is laid out ``[x_0, std_0, x_1, std_1, ..]``
    so that a following grouped conv (Split&Shuffle-D) sees one std channel per branch.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1, interleave: bool = False) -> None:
        super().__init__()
        self.group_size, self.num_channels, self.interleave = group_size, num_channels, interleave

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        spatial = x.shape[2:]
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"minibatch-std group size {g} must divide the per-device batch {n}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, *spatial)  # [G, M, F, c, *S]
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=tuple(range(2, y.ndim)))  # [M, F]
        y = y.reshape(-1, f, *([1] * len(spatial))).repeat(g, 1, *spatial)  # [N, F, *S]
        if not self.interleave:
            return torch.cat([x, y], dim=1)
        xs = x.reshape(n, f, c // f, *spatial)
        return torch.cat([xs, y.unsqueeze(2)], dim=2).reshape(n, c + f, *spatial)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}, interleave={self.interleave}"


def as_shape(shape: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """An int or a sequence as a ``spatial_dims``-tuple."""
    if isinstance(shape, int):
        return (shape,) * spatial_dims
    shape = tuple(int(s) for s in shape)
    if len(shape) != spatial_dims:
        raise ValueError(f"shape {shape} does not have {spatial_dims} dims")
    return shape
