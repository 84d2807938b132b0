"""The training tests' dataset (defined in tests/datasets.py; tests/training/families sees it too)."""

from tests.datasets import brain16

__all__ = ["brain16"]
