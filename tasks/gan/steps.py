"""The GAN's losses and its two updates, composed by `GanTask.train_step`.

Each update differentiates one network only: the discriminator's loss sees the
generator's samples as constants, and the generator's loss differentiates through the
discriminator without ever updating it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from zoo.task import Batch, row_mean
from zoo_tasks.gan.model import GAN


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array,
                       batch: Batch | None = None) -> jax.Array:
    """-log D(x) - log(1 - D(G(z))): low when real images score high and samples low.
    Real rows that `batch`'s "mask" leaves out (padding, unreadable images) do not count."""
    return row_mean(jax.nn.softplus(-real_logits), batch or {}) + \
        jnp.mean(jax.nn.softplus(fake_logits))


def generator_loss(fake_logits: jax.Array) -> jax.Array:
    """Non-saturating -log D(G(z)): strong gradients even while D rejects every sample."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


def discriminator_step(model: GAN, optimizer: nnx.Optimizer, real: jax.Array,
                       labels: jax.Array, z: jax.Array,
                       batch: Batch | None = None) -> dict[str, jax.Array]:
    """One update of the discriminator on real images and fresh samples from noise `z`
    (`batch`: the training batch, whose "mask", if any, says which real rows count)."""
    fake = jax.lax.stop_gradient(model.generator(z, labels))

    def loss_fn(discriminator):
        real_logits, fake_logits = discriminator(real, labels), discriminator(fake, labels)
        return discriminator_loss(real_logits, fake_logits, batch), (real_logits, fake_logits)

    (loss, (real_logits, fake_logits)), grads = nnx.value_and_grad(loss_fn, has_aux=True)(
        model.discriminator)
    optimizer.update(model.discriminator, grads)
    return {"d_loss": loss, "d_grad_norm": optax.tree.norm(grads),
            "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
            "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}


def generator_step(model: GAN, optimizer: nnx.Optimizer, labels: jax.Array,
                   z: jax.Array) -> dict[str, jax.Array]:
    """One update of the generator against the (just updated, here fixed) discriminator."""

    def loss_fn(generator, discriminator):
        return generator_loss(discriminator(generator(z, labels), labels))

    loss, grads = nnx.value_and_grad(loss_fn)(model.generator, model.discriminator)
    optimizer.update(model.generator, grads)
    return {"g_loss": loss, "g_grad_norm": optax.tree.norm(grads)}
