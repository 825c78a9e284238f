"""The shared model library: activations, pooling, every classifier variant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from zoo.errors import ZooError
from zoo.models import ACTIVATIONS, CLASSIFIERS, IMAGENET, create_classifier, get_activation
from zoo.models.copies import Average, Frozen, retyped_copy, update_average
from zoo.models.dcgan import Discriminator, Generator, Upsample
from zoo.models.initialise import initialised
from zoo.models import layers
from zoo.models.layers import max_pool, max_pool_2x2

DECK_ACTIVATIONS = ["identity", "binary_step", "logistic", "tanh", "arctan", "softsign", "relu"]


def test_the_decks_seven_activations_are_there_with_their_values():
    x = jnp.array([-2.0, 0.0, 2.0])
    expected = {
        "identity": [-2, 0, 2], "binary_step": [0, 1, 1],
        "logistic": 1 / (1 + np.exp(-np.array([-2.0, 0, 2]))), "tanh": np.tanh([-2.0, 0, 2]),
        "arctan": np.arctan([-2.0, 0, 2]), "softsign": [-2 / 3, 0, 2 / 3], "relu": [0, 0, 2],
    }
    for name in DECK_ACTIVATIONS:
        np.testing.assert_allclose(ACTIVATIONS[name](x), expected[name], rtol=1e-6, atol=1e-7)


def test_unknown_activation_suggests():
    with pytest.raises(ZooError, match="did you mean 'relu'"):
        get_activation("reLu")


def test_max_pool_matches_reduce_window_forward_and_backward():
    x = jax.random.normal(jax.random.key(0), (2, 7, 9, 3))  # odd sizes: edges dropped
    ref = lambda t: nnx.max_pool(t, (2, 2), (2, 2)).sum()  # noqa: E731
    np.testing.assert_allclose(max_pool_2x2(x).sum(), ref(x), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda t: max_pool_2x2(t).sum())(x), jax.grad(ref)(x))


@pytest.mark.parametrize("window", [(2, 2), (2, 1)])
def test_max_pool_gradient_is_jaxs_own_ties_included(window):
    """Its own backward pass gives JAX's gradient of the window maximum bit for bit: tied
    maxima (ReLU zeros, repeated values) share a window's gradient equally."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(np.maximum(rng.integers(-2, 3, (2, 7, 9, 3)), 0), jnp.float32)  # many ties
    weights = jnp.asarray(rng.standard_normal((2, 3, 9 // window[1], 3)), jnp.float32)
    ours = jax.grad(lambda t: (max_pool(t, window) * weights).sum())(x)
    theirs = jax.grad(lambda t: (layers._window_max(t[:, :6, :9 // window[1] * window[1]],
                                                    window) * weights).sum())(x)
    assert ours.shape == x.shape and bool(jnp.all(ours == theirs))
    ph, pw = window
    shares = np.asarray(ours)[:, :6, :9 // pw * pw].reshape(2, 3, ph, 9 // pw, pw, 3)
    np.testing.assert_allclose(shares.sum(axis=(2, 4)), weights, rtol=1e-6)  # all passed on
    assert (np.count_nonzero(shares, axis=(2, 4)) > 1).any()  # and split among ties


# The ImageNet families (seconds to minutes of CPU each to compile a gradient) run under
# -m slow; their forward pass is checked against timm in tests/test_imagenet_models.py.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in IMAGENET else n
                                  for n in sorted(CLASSIFIERS)])
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_every_classifier_maps_images_to_logits_with_finite_gradients(name, shape):
    model = initialised(lambda rngs: create_classifier(name, shape, 7, rngs=rngs), nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (2, *shape))
    # One compiled program: a ResNet op by op, eagerly, takes several times longer.
    logits, grads = nnx.jit(lambda m: (m(x), nnx.grad(lambda m: m(x).sum())(m)))(model)
    assert logits.shape == (2, 7)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_lenet_has_the_decks_layer_sizes():
    model = nnx.eval_shape(lambda: create_classifier("lenet", (28, 28, 1), 10, rngs=nnx.Rngs(0)))
    assert model.conv1.kernel.shape == (5, 5, 1, 20) and model.conv2.kernel.shape == (5, 5, 20, 50)
    assert model.conv1.bias.shape == (20,) and model.conv2.bias.shape == (50,)
    assert model.fc1.kernel.shape == (800, 500) and model.fc2.kernel.shape == (500, 10)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_lenet_pools_before_an_activation_that_commutes_with_it(activation):
    """relu(max(x) + b) is max(relu(x + b)) bit for bit, so LeNet pools before adding the
    bias and activating; gelu does not commute."""
    from zoo.models import LeNet

    model = LeNet((16, 16, 1), 3, activation=activation, filters=(4, 6), hidden=8,
                  rngs=nnx.Rngs(0))
    assert model.pool_first == (activation == "relu")
    for i, layer in enumerate((model.conv1, model.conv2)):  # initialised to zero
        layer.bias.value = jax.random.normal(jax.random.key(2 + i), layer.bias.shape)
    x = jax.random.normal(jax.random.key(1), (2, 16, 16, 1))

    def conv(layer, x):  # the textbook layer: convolution plus bias
        y = lax.conv_general_dilated(x, layer.kernel[...], (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + layer.bias[...].reshape(1, 1, 1, -1)

    def act_then_pool(m, x):
        x = max_pool_2x2(m.act(conv(m.conv1, x)))
        x = max_pool_2x2(m.act(conv(m.conv2, x)))
        return m.act(m.fc1(x.reshape(x.shape[0], -1)))

    assert jnp.array_equal(model.features(x), act_then_pool(model, x))
    ours = nnx.grad(lambda m: jnp.sum(m.features(x) ** 2))(model)
    theirs = nnx.grad(lambda m: jnp.sum(act_then_pool(m, x) ** 2))(model)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_dcgan_shapes_range_and_conditioning(num_classes, shape):
    rngs = nnx.Rngs(0)
    g = initialised(lambda r: Generator(16, shape, num_classes=num_classes, width=8, rngs=r), rngs)
    d = initialised(lambda r: Discriminator(shape, num_classes=num_classes, width=8, rngs=r), rngs)
    z = jax.random.normal(jax.random.key(0), (4, 16))
    a, b = jnp.zeros(4, jnp.int32), jnp.ones(4, jnp.int32)

    @nnx.jit  # one program: op by op it takes several times longer
    def outputs(g, d):
        images = g(z, a)
        return images, d(images, a), g(z, b), d(images, b)

    images, judged, images_b, judged_b = outputs(g, d)
    assert images.shape == (4, *shape) and float(jnp.abs(images).max()) <= 1.0
    assert judged.shape == (4,)
    conditioned = not np.allclose(images, images_b) and not np.allclose(judged, judged_b)
    assert conditioned == bool(num_classes)


def test_dcgan_refuses_sides_not_divisible_by_4():
    with pytest.raises(ZooError, match="divisible by 4"):
        Generator(16, (30, 30, 1), rngs=nnx.Rngs(0))


def test_upsample_starts_as_nearest_neighbour():
    """ICNR: the four sub-pixels of each output start equal, so no checkerboard."""
    up = initialised(lambda rngs: Upsample(3, 5, rngs=rngs), nnx.Rngs(0))
    y = up(jax.random.normal(jax.random.key(0), (2, 4, 6, 3)))
    assert y.shape == (2, 8, 12, 5)
    for dy, dx in ((0, 1), (1, 0), (1, 1)):
        np.testing.assert_allclose(y[:, dy::2, dx::2], y[:, ::2, ::2], rtol=1e-6)


def test_retyped_copy_computes_the_same_but_trains_nothing():
    model = initialised(lambda rngs: create_classifier("lenet", (28, 28, 1), 10, rngs=rngs),
                        nnx.Rngs(0))
    copy = retyped_copy(model, Frozen)
    x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
    np.testing.assert_array_equal(copy(x), model(x))
    assert not jax.tree.leaves(nnx.state(copy, nnx.Param))
    model.fc2.bias[...] = model.fc2.bias[...] + 1.0  # own buffers: the copy does not follow
    assert not np.allclose(copy(x), model(x))


def test_update_average_moves_every_variable_toward_the_module():
    model = nnx.BatchNorm(3, rngs=nnx.Rngs(0))  # parameters and statistics alike
    average = retyped_copy(model, Average)
    model.scale[...] = jnp.full(3, 3.0)
    model.mean[...] = jnp.full(3, 2.0)
    update_average(average, model, 0.75)
    np.testing.assert_allclose(average.scale[...], 1.5)  # 0.75 * 1 + 0.25 * 3
    np.testing.assert_allclose(average.mean[...], 0.5)  # 0.75 * 0 + 0.25 * 2
