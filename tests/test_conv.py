"""The convolution of zoo.models.conv: evaluated, XLA's bit for bit; differentiated on
the CPU, matmul gradients (and, for large kernels, a matmul forward pass) that agree with
XLA's own to float32 rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from zoo.models import LeNet, conv
from zoo_hardware.quantization import quantize_layers

NHWC = ("NHWC", "HWIO", "NHWC")

# (name, input NHWC, kernel HWIO, strides, padding, kernel dilation, groups): every
# convolution the library builds, plus the arguments nnx.Conv can pass that it does not use.
CASES = [
    ("lenet 5x5 valid", (3, 12, 12, 4), (5, 5, 4, 6), (1, 1), "VALID", (1, 1), 1),
    ("resnet 3x3 same", (2, 8, 8, 4), (3, 3, 4, 6), (1, 1), "SAME", (1, 1), 1),
    ("resnet 3x3 stride 2, even", (2, 8, 8, 4), (3, 3, 4, 6), (2, 2), "SAME", (1, 1), 1),
    ("resnet 3x3 stride 2, odd", (2, 9, 7, 4), (3, 3, 4, 6), (2, 2), "SAME", (1, 1), 1),
    ("projection 1x1 stride 2", (2, 8, 8, 4), (1, 1, 4, 6), (2, 2), "SAME", (1, 1), 1),
    ("dcgan 4x4 stride 2", (2, 8, 8, 3), (4, 4, 3, 5), (2, 2), "SAME", (1, 1), 1),
    ("crnn 3x3 on a wide line", (2, 8, 20, 1), (3, 3, 1, 4), (1, 1), "SAME", (1, 1), 1),
    ("explicit, uneven padding", (2, 10, 9, 4), (3, 3, 4, 6), (1, 2), ((2, 1), (0, 3)), (1, 1), 1),
    ("negative padding crops", (2, 10, 9, 4), (3, 3, 4, 6), (1, 1), ((-1, 2), (1, -1)), (1, 1), 1),
    ("kernel dilation 2", (2, 10, 9, 4), (3, 3, 4, 6), (1, 1), "SAME", (2, 2), 1),
    ("two groups", (2, 8, 8, 4), (3, 3, 2, 6), (1, 1), "SAME", (1, 1), 2),
    ("depthwise", (2, 8, 8, 4), (3, 3, 1, 4), (2, 2), "SAME", (1, 1), 4),
]


@pytest.fixture(autouse=True)
def _the_cpu_path(monkeypatch):
    """These tests check the CPU path's arithmetic, on whatever device runs them."""
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")


def _inputs(x_shape, k_shape, dtype=jnp.float32):
    rng = np.random.default_rng(0)  # numpy: eager jax.random compiles a program per shape
    return (jnp.asarray(rng.standard_normal(x_shape), dtype),
            jnp.asarray(rng.standard_normal(k_shape), dtype))


def _convolve(fn, x, k, strides, padding, dilation, groups):
    return fn(x, k, strides, padding, rhs_dilation=dilation, dimension_numbers=NHWC,
              feature_group_count=groups)


def _loss(fn, strides, padding, dilation, groups):
    """A loss whose output gradient differs everywhere, so every weight is checked."""
    def loss(x, k):
        y = _convolve(fn, x, k, strides, padding, dilation, groups).astype(jnp.float32)
        weights = jnp.sin(jnp.arange(y.size, dtype=jnp.float32)).reshape(y.shape)
        return jnp.sum(weights * y * y) / y.size
    return loss


@pytest.fixture(params=["xla input gradient", "matmul input gradient"])
def input_path(request, monkeypatch):
    """Each case through both input gradients, whichever `input_by_matmul` would pick."""
    matmul = request.param == "matmul input gradient"
    monkeypatch.setattr(conv, "input_by_matmul", lambda *shapes: matmul)


@pytest.fixture(params=["weights per kernel row", "weights all taps at once"])
def weight_path(request, monkeypatch):
    """Each case through both weight-gradient forms, whichever the kernel's size picks."""
    at_once = request.param == "weights all taps at once"
    monkeypatch.setattr(conv, "MIN_TAPS_AT_ONCE", 1 if at_once else 10**9)


def _force_forward(monkeypatch, matmul):
    monkeypatch.setattr(conv, "forward_by_matmul", lambda *shapes: matmul)


def _value_and_gradients(x, k, *args):
    loss = _loss(conv.conv_general_dilated, *args)
    assert "bwd=_conv_backward" in str(jax.make_jaxpr(loss)(x, k))  # the CPU path is tested
    ours = jax.jit(jax.value_and_grad(loss, (0, 1)))
    theirs = jax.jit(jax.value_and_grad(_loss(lax.conv_general_dilated, *args), (0, 1)))
    return ours(x, k), theirs(x, k)


def _assert_gradients_agree(grads, ref_grads):
    for grad, ref in zip(grads, ref_grads):
        assert grad.shape == ref.shape and grad.dtype == ref.dtype
        np.testing.assert_allclose(grad, ref, rtol=1e-5, atol=1e-5 * float(jnp.abs(ref).max()))


@pytest.mark.parametrize("name,x_shape,k_shape,strides,padding,dilation,groups", CASES,
                         ids=[c[0] for c in CASES])
def test_gradients_agree_with_xlas(name, x_shape, k_shape, strides, padding, dilation, groups,
                                   input_path, weight_path, monkeypatch):
    _force_forward(monkeypatch, False)
    x, k = _inputs(x_shape, k_shape)
    (value, grads), (ref_value, ref_grads) = _value_and_gradients(
        x, k, strides, padding, dilation, groups)
    assert value == ref_value  # the same forward convolution, so the same loss exactly
    _assert_gradients_agree(grads, ref_grads)


@pytest.mark.parametrize("name,x_shape,k_shape,strides,padding,dilation,groups", CASES,
                         ids=[c[0] for c in CASES])
def test_the_matmul_forward_agrees_and_evaluation_stays_xlas(name, x_shape, k_shape, strides,
                                                             padding, dilation, groups,
                                                             monkeypatch):
    """Every case through the training forward as a matmul, whichever layers
    `forward_by_matmul` picks; undifferentiated, the layer is still XLA's bit for bit."""
    _force_forward(monkeypatch, True)
    x, k = _inputs(x_shape, k_shape)
    args = (strides, padding, dilation, groups)
    (value, grads), (ref_value, ref_grads) = _value_and_gradients(x, k, *args)
    assert value == pytest.approx(float(ref_value), rel=1e-5)
    _assert_gradients_agree(grads, ref_grads)
    evaluated = jax.jit(lambda x, k: _convolve(conv.conv_general_dilated, x, k, *args))(x, k)
    assert jnp.array_equal(evaluated, _convolve(lax.conv_general_dilated, x, k, *args))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_gradients_are_as_close_to_float32_as_xlas(dtype, input_path,
                                                                weight_path):
    """Under the --dtype policy the layer computes in bfloat16/float16: the weight
    gradient is accumulated in float32, so it errs no more than XLA's own."""
    args = ((2, 2), "SAME", (1, 1), 1)
    x, k = _inputs((4, 9, 9, 8), (3, 3, 8, 16), dtype)

    @jax.jit
    def gradients(x, k):
        exact = jax.grad(_loss(lax.conv_general_dilated, *args), (0, 1))(
            x.astype(jnp.float32), k.astype(jnp.float32))
        ours = jax.grad(_loss(conv.conv_general_dilated, *args), (0, 1))(x, k)
        theirs = jax.grad(_loss(lax.conv_general_dilated, *args), (0, 1))(x, k)
        return exact, ours, theirs

    for truth, grad, ref in zip(*gradients(x, k)):
        assert grad.dtype == ref.dtype == dtype
        scale = float(jnp.abs(truth).max())
        error = float(jnp.abs(grad.astype(jnp.float32) - truth).max()) / scale
        xla_error = float(jnp.abs(ref.astype(jnp.float32) - truth).max()) / scale
        assert error <= max(2 * xla_error, 1e-2), (error, xla_error)


def _geometry(strides, groups=1):
    return conv.Geometry(strides, ((1, 1), (1, 1)), (1, 1), groups, None)


def test_the_input_gradient_is_a_matmul_where_that_is_faster():
    """Many output channels: a matmul (LeNet's conv2, ResNet's 64-channel layers); few, or
    a strided convolution of many taps, or columns too large to hold: XLA's own."""
    by_matmul = conv.input_by_matmul
    assert by_matmul(_geometry((1, 1)), (128, 8, 8, 50), (5, 5, 20, 50))
    assert by_matmul(_geometry((2, 2)), (128, 8, 8, 64), (3, 3, 32, 64))
    assert not by_matmul(_geometry((1, 1)), (128, 32, 32, 16), (3, 3, 16, 16))
    assert not by_matmul(_geometry((2, 2)), (64, 7, 7, 64), (4, 4, 32, 64))
    assert not by_matmul(_geometry((1, 1), groups=64), (8, 8, 8, 64), (3, 3, 1, 64))
    assert not by_matmul(_geometry((1, 1)), (32, 112, 112, 64), (3, 3, 64, 64))  # 925 MB


def test_the_forward_is_a_matmul_for_large_kernels_over_many_channels():
    """LeNet's conv2 (5x5 over 20 channels); not its conv1 (one channel), ResNet's 3x3
    layers, a strided layer, or one whose rows would not fit."""
    by_matmul = conv.forward_by_matmul
    assert by_matmul(_geometry((1, 1)), (128, 12, 12, 20), (5, 5, 20, 50))
    assert not by_matmul(_geometry((1, 1)), (128, 28, 28, 1), (5, 5, 1, 20))
    assert not by_matmul(_geometry((1, 1)), (128, 32, 32, 64), (3, 3, 64, 64))
    assert not by_matmul(_geometry((2, 2)), (128, 32, 32, 64), (5, 5, 64, 64))
    assert not by_matmul(_geometry((1, 1)), (64, 224, 224, 32), (5, 5, 32, 64))  # 4 GB


def test_the_unused_input_gradient_of_a_first_layer_is_never_computed():
    x, k = _inputs((2, 12, 12, 1), (5, 5, 1, 8))
    loss = _loss(conv.conv_general_dilated, (1, 1), "VALID", (1, 1), 1)
    weight_only = jax.jit(jax.grad(loss, 1)).lower(x, k).compile().as_text()
    both = jax.jit(jax.grad(loss, (0, 1))).lower(x, k).compile().as_text()
    # The forward pass is a convolution; the input gradient is XLA's transposed one.
    assert weight_only.count("convolution(") == 1 and both.count("convolution(") == 2


@pytest.mark.parametrize("count", [1, 5, 9, 11, 16, 25, 49, 256])
def test_stacks_in_one_pass_keep_jnp_stacks_order(count):
    arrays = [jnp.arange(6, dtype=jnp.float32).reshape(2, 3) + 10 * i for i in range(count)]
    for axis in (0, 1, 2):
        np.testing.assert_array_equal(conv.stack_in_one_pass(arrays, axis),
                                      jnp.stack(arrays, axis))


def test_large_kernels_weight_patches_are_built_in_one_pass():
    """25 windows in one stack would be 25 copies and a concatenation XLA leaves unfused."""
    x, k = _inputs((2, 12, 12, 4), (5, 5, 4, 6))
    loss = _loss(conv.conv_general_dilated, (1, 1), "VALID", (1, 1), 1)
    hlo = jax.jit(jax.grad(loss, 1)).lower(x, k).compile().as_text()
    entry = hlo[hlo.index("\nENTRY "):]
    assert "concatenate(" in hlo and "concatenate(" not in entry


def test_the_weight_gradient_pads_a_channel_major_copy_made_once():
    """Padded before the transposition, XLA folded it into each kernel row's windows,
    which then read across channels (ResNet-14's step 1.08-1.11x the time)."""
    x, k = _inputs((2, 8, 8, 4), (3, 3, 4, 6))
    loss = _loss(conv.conv_general_dilated, (1, 1), "SAME", (1, 1), 1)
    hlo = jax.jit(jax.grad(loss, 1)).lower(x, k).compile().as_text()
    assert " = f32[4,2,10,10]" in hlo[hlo.index("\nENTRY "):]  # [Cin, N, H + 2, W + 2]


def test_other_backends_get_xlas_own_gradient(monkeypatch):
    x, k = _inputs((2, 8, 8, 4), (3, 3, 4, 6))
    loss = _loss(conv.conv_general_dilated, (1, 1), "SAME", (1, 1), 1)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert "custom_vjp" not in str(jax.make_jaxpr(loss)(x, k))


def test_conv_layers_are_nnx_convs_with_the_same_parameters():
    layer = nnx.eval_shape(lambda: conv.Conv(3, 8, (3, 3), strides=2, rngs=nnx.Rngs(0)))
    assert type(layer) is nnx.Conv and layer.conv_general_dilated is conv.conv_general_dilated

    def params(make):
        return jax.eval_shape(lambda: nnx.state(make(3, 8, (3, 3), strides=2, rngs=nnx.Rngs(0)),
                                                nnx.Param))

    assert params(conv.Conv) == params(nnx.Conv)  # same paths, shapes, dtypes: same checkpoints


def test_quantization_aware_training_keeps_the_fast_gradient():
    model = nnx.eval_shape(lambda: LeNet((28, 28, 1), 10, rngs=nnx.Rngs(0)))
    quantize_layers(model, act_bits=8, ranges={})
    assert model.conv2.conv_general_dilated.op is conv.conv_general_dilated
    assert model.fc1.dot_general.op is lax.dot_general
