"""Networks: dimension-generic StyleGAN2 layers and the Split&Shuffle-paper architectures."""

from medgan3d.networks.stylegan import Discriminator, Generator, MappingNetwork, SynthesisNetwork

__all__ = ["Discriminator", "Generator", "MappingNetwork", "SynthesisNetwork"]
