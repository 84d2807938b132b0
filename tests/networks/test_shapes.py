"""assert_shape at the networks' doors: a wrong input is one clear error naming it and both shapes."""

from __future__ import annotations

import pytest
import torch

from medgan3d.config import load_preset
from medgan3d.networks.shapes import ShapeError, assert_shape


def test_assert_shape_names_the_tensor_and_both_shapes() -> None:
    x = torch.zeros(2, 3, 4)
    assert_shape(x, [None, 3, 4], "x")
    assert_shape(x, [2, None, None], "x")
    for shape in ([None, 3, 5], [None, 3], [None, 3, 4, 1]):
        with pytest.raises(ShapeError) as info:
            assert_shape(x, shape, "x")
        assert str(info.value) == f"x: shape [2, 3, 4], expected [N, {', '.join(map(str, shape[1:]))}]"
    with pytest.raises(ValueError, match=r"img: shape \[2, 3, 4\], expected \[N, \*, 4, 4\]"):
        assert_shape(x, [None, None, 4, 4], "img")  # a ValueError too: the CLI prints it as one line


def test_networks_refuse_a_wrong_input_at_their_forward() -> None:
    model = load_preset("tiny").model
    G, D = model.build_generator(), model.build_discriminator()
    good = torch.randn(2, G.z_dim)
    with pytest.raises(ShapeError, match=rf"z: shape \[2, {G.z_dim + 1}\], expected \[N, {G.z_dim}\]"):
        G(torch.randn(2, G.z_dim + 1))
    img = G(good)
    assert D(img).shape == (2, 1)
    with pytest.raises(ShapeError, match=r"img: shape \[2, 1, .*\], expected \[N, 1, "):
        D(img[..., :-1])
    with pytest.raises(ShapeError, match=rf"ws: shape \[2, {G.num_ws - 1}, {G.w_dim}\]"):
        G.synthesis(torch.randn(2, G.num_ws - 1, G.w_dim))
