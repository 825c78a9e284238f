"""One module holding everything a GAN run trains, averages and measures with.

The harness sees a single model: its `nnx.Param`s are the generator's and the
discriminator's (each with its own optimizer); the averaged generator, the generator at
initialization and the judge are non-`Param` copies (`zoo.models.copies`), so they are
never trained but are checkpointed and placed on devices with the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from zoo.models.copies import Average, Frozen, retyped_copy
from zoo.models.dcgan import Discriminator, Generator


class GAN(nnx.Module):
    """Generator, discriminator, the generator's moving average, and fixed references.

    Attributes:
      generator, discriminator: the two trained networks.
      average: exponential moving average of the generator: samples and metrics use it.
      untrained: the generator as initialized, the baseline of `fd_untrained`.
      judge: a trained classifier whose features and predictions measure sample quality.
    """

    def __init__(self, image_shape: Sequence[int], judge: nnx.Module, *, latent_dim: int,
                 num_classes: int, width: int, rngs: nnx.Rngs):
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, image_shape, num_classes=num_classes,
                                   width=width, rngs=rngs)
        self.discriminator = Discriminator(image_shape, num_classes=num_classes, width=width,
                                           rngs=rngs)
        self.average = retyped_copy(self.generator, Average)
        self.untrained = retyped_copy(self.generator, Frozen)
        self.judge = retyped_copy(judge, Frozen)

    def sample(self, z: jax.Array, labels: jax.Array | None = None, *,
               untrained: bool = False) -> jax.Array:
        """Images in [0, 1] from the averaged generator, or from the untrained baseline.

        `labels` (int classes) are used only by a conditional generator.
        """
        generator = self.untrained if untrained else self.average
        return (generator(z, labels) + 1.0) / 2.0
