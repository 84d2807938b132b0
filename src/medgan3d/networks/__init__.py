"""Networks, one module per family: dimension-generic StyleGAN2 with the Split&Shuffle-paper architectures
(:mod:`.stylegan`), HA-GAN (:mod:`.hagan`) and the four 3D GAN baselines (:mod:`.baselines`). Importing the
package registers every class for :func:`medgan3d.modeling.from_pretrained`."""

from medgan3d.networks.baselines import (
    BaselineCodeDiscriminator,
    BaselineDiscriminator,
    BaselineEncoder,
    BaselineGenerator,
    BaselineVAEEncoder,
)
from medgan3d.networks.hagan import HAGANDiscriminator, HAGANEncoder, HAGANGenerator, HAGANLatentEncoder
from medgan3d.networks.stylegan import Discriminator, Generator, MappingNetwork, SynthesisNetwork

__all__ = [
    "BaselineCodeDiscriminator",
    "BaselineDiscriminator",
    "BaselineEncoder",
    "BaselineGenerator",
    "BaselineVAEEncoder",
    "Discriminator",
    "Generator",
    "HAGANDiscriminator",
    "HAGANEncoder",
    "HAGANGenerator",
    "HAGANLatentEncoder",
    "MappingNetwork",
    "SynthesisNetwork",
]
