"""The model families shipped with medgan3d; importing this package registers them (see ..family)."""

from medgan3d.training.families import baselines, hagan, stylegan2

__all__ = ["baselines", "hagan", "stylegan2"]
