"""The command-line tests' datasets (defined in tests/datasets.py)."""

from tests.datasets import brain_root, heldout

__all__ = ["brain_root", "heldout"]
