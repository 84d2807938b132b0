"""The prepared phantom datasets that tests in several folders share, defined once.

The fixtures reach a folder through that folder's ``conftest.py``, which re-exports the ones it uses (there is
no root ``tests/conftest.py``). Each builds its data with :func:`medgan3d.data.make_brain_phantoms` (seeded,
offline), so every test sees the same volumes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medgan3d.data import make_brain_phantoms

SHAPE = (16, 16, 16)


@pytest.fixture(scope="module")
def brain16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 brain phantoms at 16³ (seed 0): the training tests' dataset, one per test module."""
    out = tmp_path_factory.mktemp("data") / "brain16"
    make_brain_phantoms(12, out, seed=0, shape=SHAPE)
    return out


@pytest.fixture(scope="session")
def brain_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared dataset of 24 brain phantoms at 16³ (the 'real' set of the evaluation tests)."""
    root = tmp_path_factory.mktemp("metrics") / "brain16"
    make_brain_phantoms(24, root, seed=0, shape=SHAPE)
    return root


@pytest.fixture(scope="session")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """24 further phantoms from another seed, in model space [N, 1, D, H, W]: a clean 'generated' set."""
    root = tmp_path_factory.mktemp("metrics") / "brain16-heldout"
    make_brain_phantoms(24, root, seed=1, shape=SHAPE)
    return torch.from_numpy(np.load(root / "volumes.npy").astype(np.float32))
