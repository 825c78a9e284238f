"""The shared model library: activations, pooling, every classifier variant."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from zoo.errors import ZooError
from zoo.models import ACTIVATIONS, CLASSIFIERS, create_classifier, get_activation
from zoo.models.layers import max_pool_2x2

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


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_every_classifier_maps_images_to_logits_with_finite_gradients(name, shape):
    model = create_classifier(name, shape, 7, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(1), (2, *shape))
    assert model(x).shape == (2, 7)
    grads = nnx.grad(lambda m: m(x).sum())(model)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_lenet_has_the_decks_layer_sizes():
    model = create_classifier("lenet", (28, 28, 1), 10, rngs=nnx.Rngs(0))
    assert model.conv1.kernel.shape == (5, 5, 1, 20) and model.conv2.kernel.shape == (5, 5, 20, 50)
    assert model.fc1.kernel.shape == (800, 500) and model.fc2.kernel.shape == (500, 10)
