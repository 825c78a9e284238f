"""Beam search for autoregressive decoders, under `jax.jit` with fixed shapes.

One `lax.while_loop` over at most `max_len` steps (it stops early once every beam has
ended), so a decoder compiles once whatever the sentence lengths. Greedy decoding is
the same search with one beam.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

StepFn = Callable[[Any, Any, jax.Array], tuple[Any, jax.Array]]


def length_penalty(lengths: jax.Array, alpha: float) -> jax.Array:
    """GNMT's ((5 + length) / 6) ** alpha: divides scores so long outputs are not penalized."""
    return ((5.0 + lengths) / 6.0) ** alpha


def beam_search(step: StepFn, context: Any, state: Any, *, beam: int, max_len: int, bos: int,
                eos: int, pad: int = 0, alpha: float = 0.6) -> tuple[jax.Array, jax.Array]:
    """The best of `beam` hypotheses per example, ranked by length-normalized log-prob.

    Args:
      step: `step(context, state, tokens [N]) -> (state, logits [N, V])`, N = rows.
      context: pytree with a leading batch axis B, read but not changed (encoder memory).
      state: pytree of decoder states with leading axis B.
      beam: hypotheses kept per example (1: greedy).
      max_len: most tokens generated, the end token included.
      alpha: length-penalty exponent (0: raw log-probabilities).

    Returns:
      Tokens [B, max_len] (the end token, then `pad`) and their normalized scores [B].
    """
    batch = jax.tree.leaves(state)[0].shape[0]
    tile = lambda tree: jax.tree.map(lambda x: jnp.repeat(x, beam, axis=0), tree)  # noqa: E731
    context, state = tile(context), tile(state)
    neg_inf = jnp.float32(-jnp.inf)
    init = dict(
        t=jnp.int32(0),
        tokens=jnp.full((batch, beam, max_len), pad, jnp.int32),
        last=jnp.full((batch, beam), bos, jnp.int32),
        scores=jnp.where(jnp.arange(beam) == 0, 0.0, neg_inf)[None, :].repeat(batch, 0),
        finished=jnp.zeros((batch, beam), bool),
        lengths=jnp.zeros((batch, beam), jnp.int32),
        state=state,
    )

    def cond(c):
        return (c["t"] < max_len) & ~jnp.all(c["finished"])

    def body(c):
        state, logits = step(context, c["state"], c["last"].reshape(-1))
        logp = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch, beam, -1)
        vocab = logp.shape[-1]
        # An ended hypothesis has one continuation, at no cost: itself.
        ended = jnp.where(jnp.arange(vocab) == eos, 0.0, neg_inf)
        logp = jnp.where(c["finished"][..., None], ended[None, None, :], logp)
        candidates = (c["scores"][..., None] + logp).reshape(batch, beam * vocab)
        scores, index = jax.lax.top_k(candidates, beam)
        parent, token = index // vocab, index % vocab
        pick = lambda x: jnp.take_along_axis(x, parent, axis=1)  # noqa: E731
        was_finished = pick(c["finished"])
        tokens = jnp.take_along_axis(c["tokens"], parent[..., None], axis=1)
        tokens = tokens.at[:, :, c["t"]].set(jnp.where(was_finished, pad, token))
        rows = (jnp.arange(batch)[:, None] * beam + parent).reshape(-1)
        return dict(t=c["t"] + 1, tokens=tokens, last=token, scores=scores,
                    finished=was_finished | (token == eos),
                    lengths=pick(c["lengths"]) + (~was_finished).astype(jnp.int32),
                    state=jax.tree.map(lambda x: x[rows], state))

    out = jax.lax.while_loop(cond, body, init)
    normalized = out["scores"] / length_penalty(out["lengths"].astype(jnp.float32), alpha)
    best = jnp.argmax(normalized, axis=1)
    tokens = jnp.take_along_axis(out["tokens"], best[:, None, None], axis=1)[:, 0]
    return tokens, jnp.take_along_axis(normalized, best[:, None], axis=1)[:, 0]
