"""LSTM layers over padded batches: one `lax.scan` per layer (both directions of a
bidirectional layer in one scan, see `_both_directions`).

Written out rather than taken from `nnx.RNN(nnx.OptimizedLSTMCell)` for three reasons,
each what cuDNN does: the input projection of every time step is one large matmul
hoisted out of the scan (the scan body keeps only the recurrent matmul); the recurrent
kernel's gradient is one large matmul after the backward scan, not one small matmul
and sum per step (`_recurrence`); and padded steps are masked inside the scan, so
padding changes neither outputs nor final states, in either direction. Parameters
follow `OptimizedLSTMCell`: gates i, f, g, o; orthogonal recurrent kernel; the
forget-gate bias starts at 1 (Jozefowicz et al., 2015). Matmuls run in `dtype`; gate
nonlinearities and the carry stay float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Carry = tuple[jax.Array, jax.Array]  # (cell c, hidden h), each [batch, hidden]


def _gate_bias_init(key, shape, dtype=jnp.float32):
    """Zeros, except 1 for the forget gate (the second quarter)."""
    del key
    hidden = shape[0] // 4
    return jnp.zeros(shape, dtype).at[hidden:2 * hidden].set(1.0)


class LSTM(nnx.Module):
    """One unidirectional LSTM layer.

    Example:
      lstm = LSTM(16, 32, rngs=nnx.Rngs(0))
      outputs, (c, h) = lstm(x, mask)  # x [B, T, 16], mask [B, T] -> outputs [B, T, 32]
    """

    def __init__(self, in_features: int, hidden: int, *, dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        self.hidden = hidden
        self.input = nnx.Linear(in_features, 4 * hidden, bias_init=_gate_bias_init, dtype=dtype,
                                rngs=rngs)
        self.recurrent = nnx.Linear(hidden, 4 * hidden, use_bias=False, dtype=dtype,
                                    kernel_init=nnx.initializers.orthogonal(), rngs=rngs)

    def initial_carry(self, batch: int) -> Carry:
        zeros = jnp.zeros((batch, self.hidden), jnp.float32)
        return zeros, zeros

    def cell(self, carry: Carry, input_gates: jax.Array) -> Carry:
        """One step, given the already projected input (`self.input(x_t)`)."""
        return _gated(carry[0], input_gates + self.recurrent(carry[1]))

    def step(self, carry: Carry, x: jax.Array) -> Carry:
        """One step on raw input `x` [B, in_features] (for autoregressive decoders)."""
        return self.cell(carry, self.input(x))

    def __call__(self, x: jax.Array, mask: jax.Array | None = None, *, reverse: bool = False,
                 carry: Carry | None = None) -> tuple[jax.Array, Carry]:
        """Runs over a batch of sequences padded at the end.

        Args:
          x: [B, T, in_features].
          mask: [B, T], 1 for real steps and 0 for padding (None: no padding). Padded
            steps leave the carry unchanged and output zeros, so the reverse direction
            starts at each sequence's own last step.
          reverse: scan from the last step to the first.
          carry: initial (c, h); zeros by default.

        Returns:
          Outputs [B, T, hidden] and the final carry (after each sequence's last real step).
        """
        batch, steps = x.shape[:2]
        if mask is None:
            mask = jnp.ones((batch, steps), jnp.float32)
        carry = self.initial_carry(batch) if carry is None else carry
        gates = jnp.swapaxes(self.input(x), 0, 1)  # [T, B, 4H]: one matmul for all steps
        keep = jnp.swapaxes(mask, 0, 1)[..., None].astype(jnp.float32)  # [T, B, 1]

        # A forward scan over flipped steps, not `scan(reverse=True)`: the same numbers,
        # and ONNX export (jax2onnx) has no reverse scan.
        order = (lambda a: jnp.flip(a, 0)) if reverse else (lambda a: a)
        kernel = self.recurrent.kernel[...].astype(self.recurrent.dtype or jnp.float32)
        outputs, (c, h) = _recurrence(kernel[None], order(gates)[:, None], order(keep)[:, None],
                                      (carry[0][None], carry[1][None]))
        return jnp.swapaxes(order(outputs[:, 0]), 0, 1), (c[0], h[0])


def _gated(c: jax.Array, gates: jax.Array) -> Carry:
    """The new (c, h) from the summed input and recurrent gates (i, f, g, o)."""
    i, f, g, o = jnp.split(gates.astype(jnp.float32), 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return c, jax.nn.sigmoid(o) * jnp.tanh(c)


def _step(kernel: jax.Array, carry: Carry, gates: jax.Array,
          keep: jax.Array) -> tuple[Carry, jax.Array, jax.Array]:
    """One masked step of D stacked LSTMs: kernel [D, H, 4H], carry ([D, B, H] x 2),
    gates [D, B, 4H] (the projected input), keep [D, B, 1]. Returns the new carry (the
    old one where keep is 0), the output (zeros there) and the summed gates."""
    summed = gates + jnp.einsum("dbh,dhg->dbg", carry[1].astype(kernel.dtype), kernel)
    return (*_masked_update(carry, summed, keep), summed)


def _masked_update(carry: Carry, summed: jax.Array, keep: jax.Array) -> tuple[Carry, jax.Array]:
    new_c, new_h = _gated(carry[0], summed)
    c = keep * new_c + (1 - keep) * carry[0]
    h = keep * new_h + (1 - keep) * carry[1]
    return (c, h), new_h * keep


@jax.custom_vjp
def _recurrence(kernel: jax.Array, gates: jax.Array, keep: jax.Array,
                carry: Carry) -> tuple[jax.Array, Carry]:
    """`_step` over steps [T, D, B, ...] from `carry`: outputs [T, D, B, H], final carry.

    Its gradient runs the backward scan for the gates' gradient only, then takes the
    kernel's as one matmul over all steps, instead of the per-step matmul and sum that
    differentiating the scan gives (on a CPU, a third of the CRNN's LSTM backward).
    """
    def body(carry, inputs):
        carry, output, _ = _step(kernel, carry, *inputs)
        return carry, output

    carry, outputs = jax.lax.scan(body, carry, (gates, keep))
    return outputs, carry


def _recurrence_forward(kernel, gates, keep, carry):
    def body(carry, inputs):
        new, output, summed = _step(kernel, carry, *inputs)
        return new, (output, carry, summed)

    final, (outputs, previous, summed) = jax.lax.scan(body, carry, (gates, keep))
    return (outputs, final), (kernel, keep, previous, summed)


def _recurrence_backward(residuals, cotangents):
    kernel, keep, previous, summed = residuals  # previous: the carry before each step
    d_outputs, d_final = cotangents

    def body(d_carry, inputs):
        carry, summed_t, keep_t, d_output = inputs
        _, vjp = jax.vjp(lambda carry, summed: _masked_update(carry, summed, keep_t),
                         carry, summed_t)
        (d_c, d_h), d_summed = vjp((d_carry, d_output))
        d_h = d_h + jnp.einsum("dbg,dhg->dbh", d_summed.astype(kernel.dtype), kernel)
        return (d_c, d_h.astype(jnp.float32)), d_summed

    d_carry, d_summed = jax.lax.scan(body, d_final, (previous, summed, keep, d_outputs),
                                     reverse=True)
    d_kernel = jnp.einsum("tdbh,tdbg->dhg", previous[1].astype(kernel.dtype),
                          d_summed.astype(kernel.dtype), preferred_element_type=jnp.float32)
    return d_kernel.astype(kernel.dtype), d_summed, jnp.zeros_like(keep), d_carry


_recurrence.defvjp(_recurrence_forward, _recurrence_backward)


class BiLSTM(nnx.Module):
    """A stack of bidirectional LSTM layers; each layer sees both directions of the last.

    Returns outputs [B, T, 2 * hidden] and the last layer's final (forward, backward)
    carries.
    """

    def __init__(self, in_features: int, hidden: int, *, layers: int = 1,
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        sizes = [in_features] + [2 * hidden] * (layers - 1)
        self.forward = nnx.List([LSTM(n, hidden, dtype=dtype, rngs=rngs) for n in sizes])
        self.backward = nnx.List([LSTM(n, hidden, dtype=dtype, rngs=rngs) for n in sizes])

    def __call__(self, x: jax.Array,
                 mask: jax.Array | None = None) -> tuple[jax.Array, tuple[Carry, Carry]]:
        if mask is None:
            mask = jnp.ones(x.shape[:2], jnp.float32)
        finals = None
        for forward, backward in zip(self.forward, self.backward):
            out_f, out_b, finals = _both_directions(forward, backward, x, mask)
            x = jnp.concatenate([out_f, out_b], axis=-1)
        return x, finals


def _both_directions(forward: LSTM, backward: LSTM, x: jax.Array,
                     mask: jax.Array) -> tuple[jax.Array, jax.Array, tuple[Carry, Carry]]:
    """One bidirectional layer as one scan over [2 directions, ...] (the backward one on
    flipped steps): the same numbers as `forward(x, mask)` and `backward(x, mask,
    reverse=True)`, but half the scan steps, each one batched matmul, which on a CPU
    costs less than two (each step of a small LSTM is mostly per-operation overhead).

    Returns the forward and backward outputs [B, T, hidden] and final carries.
    """
    flip = lambda a: jnp.flip(a, 0)  # noqa: E731
    gates = jnp.stack([jnp.swapaxes(forward.input(x), 0, 1),
                       flip(jnp.swapaxes(backward.input(x), 0, 1))], axis=1)  # [T, 2, B, 4H]
    keep = jnp.swapaxes(mask, 0, 1)[..., None].astype(jnp.float32)  # [T, B, 1]
    keep = jnp.stack([keep, flip(keep)], axis=1)
    dtype = forward.recurrent.dtype or jnp.float32
    kernel = jnp.stack([forward.recurrent.kernel[...], backward.recurrent.kernel[...]]).astype(dtype)

    zeros = jnp.zeros((2, x.shape[0], forward.hidden), jnp.float32)
    outputs, (c, h) = _recurrence(kernel, gates, keep, (zeros, zeros))  # [T, 2, B, H]
    out_f, out_b = jnp.swapaxes(outputs[:, 0], 0, 1), jnp.swapaxes(flip(outputs[:, 1]), 0, 1)
    return out_f, out_b, ((c[0], h[0]), (c[1], h[1]))
