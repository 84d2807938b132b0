"""Shared fixtures: tiny prepared brain-phantom datasets (16³) and a held-out clean set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medgan3d.data import make_brain_phantoms

SHAPE = (16, 16, 16)


@pytest.fixture(scope="session")
def brain_root(tmp_path_factory) -> Path:
    """A prepared dataset of 24 brain phantoms at 16³ (the 'real' set)."""
    root = tmp_path_factory.mktemp("metrics") / "brain16"
    make_brain_phantoms(24, root, seed=0, shape=SHAPE)
    return root


@pytest.fixture(scope="session")
def heldout(tmp_path_factory) -> torch.Tensor:
    """24 further phantoms from another seed, in model space [N, 1, D, H, W]: a clean 'generated' set."""
    root = tmp_path_factory.mktemp("metrics") / "brain16-heldout"
    make_brain_phantoms(24, root, seed=1, shape=SHAPE)
    return torch.from_numpy(np.load(root / "volumes.npy").astype(np.float32))
