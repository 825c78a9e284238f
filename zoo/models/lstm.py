"""LSTM layers over padded batches: one `lax.scan` per layer and direction.

Written out rather than taken from `nnx.RNN(nnx.OptimizedLSTMCell)` for two reasons:
the input projection of every time step is one large matmul hoisted out of the scan
(the scan body keeps only the recurrent matmul, as cuDNN does), and padded steps are
masked inside the scan, so padding changes neither outputs nor final states, in either
direction. Parameters follow `OptimizedLSTMCell`: gates i, f, g, o; orthogonal
recurrent kernel; the forget-gate bias starts at 1 (Jozefowicz et al., 2015). Matmuls
run in `dtype`; gate nonlinearities and the carry stay float32.
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
        c, h = carry
        gates = (input_gates + self.recurrent(h)).astype(jnp.float32)
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return c, jax.nn.sigmoid(o) * jnp.tanh(c)

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

        def scan_step(carry, inputs):
            gates_t, keep_t = inputs
            new = self.cell(carry, gates_t)
            carry = jax.tree.map(lambda n, o: keep_t * n + (1 - keep_t) * o, new, carry)
            return carry, new[1] * keep_t

        # A forward scan over flipped steps, not `scan(reverse=True)`: the same numbers,
        # and ONNX export (jax2onnx) has no reverse scan.
        order = (lambda a: jnp.flip(a, 0)) if reverse else (lambda a: a)
        carry, outputs = jax.lax.scan(scan_step, carry, (order(gates), order(keep)))
        return jnp.swapaxes(order(outputs), 0, 1), carry


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
        finals = None
        for forward, backward in zip(self.forward, self.backward):
            out_f, final_f = forward(x, mask)
            out_b, final_b = backward(x, mask, reverse=True)
            x, finals = jnp.concatenate([out_f, out_b], axis=-1), (final_f, final_b)
        return x, finals
