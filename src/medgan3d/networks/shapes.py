"""Shape contracts at the top of the networks' forwards, as StyleGAN2-ADA's ``misc.assert_shape`` (Karras et
al., NeurIPS 2020): a wrong input fails at the network's door with its name and both shapes, not deep inside
a grouped convolution with a message about channels."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor


class ShapeError(ValueError):
    """A tensor whose shape differs from the one a network reads; the message names it and both shapes."""


def assert_shape(x: Tensor, shape: Sequence[int | None], name: str) -> None:
    """Raise :class:`ShapeError` unless ``x`` has ``len(shape)`` dims and each size ``shape`` gives (None: any)."""
    if x.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(x.shape, shape, strict=True)
    ):
        return
    expected = ", ".join(
        "N" if i == 0 and want is None else "*" if want is None else str(want) for i, want in enumerate(shape)
    )
    raise ShapeError(f"{name}: shape {list(x.shape)}, expected [{expected}]")
