"""DCGAN generator and discriminator (Radford et al., 2016), optionally class-conditional.

Sized for small images (28x28 MNIST, 32x32): two 2x up-/down-sampling stages. The
generator upsamples by sub-pixel convolution (Shi et al., 2016), which can express any
4x4 stride-2 transposed convolution: XLA's CPU backend computes the kernel gradient of
`nnx.ConvTranspose` about 14x slower (1.15 s against 80 ms for one 64x7x7x128 batch). With
`num_classes > 0` the generator takes a one-hot label beside its noise and the
discriminator adds a projection term (Miyato & Koyama, 2018): the inner product of a
class embedding with its features, which conditions it far more strongly than
concatenating the label to the image.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.errors import ZooError
from zoo.models.conv import Conv


def _check_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    h, w, c = image_shape
    if h % 4 or w % 4:
        raise ZooError(f"DCGAN needs image sides divisible by 4, got {h}x{w}; "
                       f"resize the data (e.g. --set image_size=32)")
    return h, w, c


def _icnr(init: nnx.initializers.Initializer) -> nnx.initializers.Initializer:
    """ICNR initialization: all four sub-pixels start equal (nearest-neighbour upsampling of
    one convolution), so the generator's first samples have no checkerboard."""

    def icnr(key, shape, dtype=jnp.float32):
        *window, cin, cout = shape
        return jnp.tile(init(key, (*window, cin, cout // 4), dtype), (1, 1, 1, 4))

    return icnr


class Upsample(nnx.Module):
    """2x upsampling: a 3x3 convolution to four sub-pixels per output channel, then
    depth-to-space."""

    def __init__(self, cin: int, cout: int, *, use_bias: bool = True, rngs: nnx.Rngs):
        self.conv = Conv(cin, 4 * cout, (3, 3), use_bias=use_bias,
                             kernel_init=_icnr(nnx.initializers.lecun_normal()), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(x)
        n, h, w, c = y.shape
        y = y.reshape(n, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
        return y.reshape(n, 2 * h, 2 * w, c // 4)


class Generator(nnx.Module):
    """Noise (and a label) to an image in [-1, 1]: dense to (h/4, w/4), two 2x upsamplings."""

    def __init__(self, latent_dim: int, image_shape: Sequence[int], *, num_classes: int = 0,
                 width: int = 64, rngs: nnx.Rngs):
        h, w, c = _check_shape(image_shape)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.start = (h // 4, w // 4, 2 * width)
        self.fc = nnx.Linear(latent_dim + num_classes, h // 4 * (w // 4) * 2 * width,
                             use_bias=False, rngs=rngs)
        self.bn0 = nnx.BatchNorm(h // 4 * (w // 4) * 2 * width, momentum=0.9, rngs=rngs)
        self.up1 = Upsample(2 * width, width, use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(width, momentum=0.9, rngs=rngs)
        self.up2 = Upsample(width, c, rngs=rngs)

    def __call__(self, z: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        if self.num_classes:
            z = jnp.concatenate([z, jax.nn.one_hot(labels, self.num_classes, dtype=z.dtype)], -1)
        x = jax.nn.relu(self.bn0(self.fc(z)))
        x = x.reshape(x.shape[0], *self.start)
        x = jax.nn.relu(self.bn1(self.up1(x)))
        return jnp.tanh(self.up2(x))


class Discriminator(nnx.Module):
    """Image (and a label) to one real-vs-fake logit: two strided convs, leaky ReLU, dense."""

    def __init__(self, image_shape: Sequence[int], *, num_classes: int = 0, width: int = 64,
                 rngs: nnx.Rngs):
        h, w, c = _check_shape(image_shape)
        self.num_classes = num_classes
        features = h // 4 * (w // 4) * 2 * width
        self.conv1 = Conv(c, width, (4, 4), strides=(2, 2), rngs=rngs)
        self.conv2 = Conv(width, 2 * width, (4, 4), strides=(2, 2), rngs=rngs)
        self.head = nnx.Linear(features, 1, rngs=rngs)
        self.embed = nnx.Embed(num_classes, features, rngs=rngs) if num_classes else None

    def __call__(self, images: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        x = jax.nn.leaky_relu(self.conv1(images), 0.2)
        x = jax.nn.leaky_relu(self.conv2(x), 0.2)
        x = x.reshape(x.shape[0], -1)
        logits = self.head(x)[:, 0]
        if self.embed is not None:
            logits = logits + jnp.sum(self.embed(labels) * x, axis=-1)
        return logits
