"""An LSTM encoder-decoder with Luong attention (Luong et al., 2015), as in Sockeye 1.

The encoder is a bidirectional LSTM over source embeddings. The decoder is an LSTM with
"input feeding": each step reads the previous target token and the previous attentional
state, attends over the encoder outputs ("general" score h_t^T W m_s, padded source
positions masked out) and predicts the next token. Training runs the same `step` under
`lax.scan` over the target (teacher forcing); decoding runs it under a search
(`zoo.models.search`), so both paths share one definition of a step.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.lstm import LSTM, BiLSTM


class Memory(NamedTuple):
    """What the decoder attends over: encoder outputs of one batch."""

    values: jax.Array  # [B, S, 2H] encoder outputs
    keys: jax.Array  # [B, S, H] values projected for the "general" score
    mask: jax.Array  # [B, S] 1 for real source tokens


class DecoderState(NamedTuple):
    c: jax.Array  # [B, H]
    h: jax.Array  # [B, H]
    feed: jax.Array  # [B, H] the previous attentional hidden state (input feeding)


class Seq2Seq(nnx.Module):
    """Source token ids to next-target-token logits (float32; layers compute in `dtype`).

    Example:
      model = Seq2Seq(100, 120, rngs=nnx.Rngs(0))
      logits = model(src, src_mask, tgt_in)         # teacher forcing: [B, T, 120]
      memory, state = model.encode(src, src_mask)    # then model.step(...) per token
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, *, embed: int = 64, hidden: int = 256,
                 layers: int = 1, dropout: float = 0.0, dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        if hidden % 2:
            raise ValueError(f"hidden must be even (two encoder directions), got {hidden}")
        self.src_embed = nnx.Embed(src_vocab, embed, dtype=dtype, rngs=rngs)
        self.tgt_embed = nnx.Embed(tgt_vocab, embed, dtype=dtype, rngs=rngs)
        self.encoder = BiLSTM(embed, hidden // 2, layers=layers, dtype=dtype, rngs=rngs)
        self.bridge = nnx.Linear(hidden, hidden, dtype=dtype, rngs=rngs)
        self.decoder = LSTM(embed + hidden, hidden, dtype=dtype, rngs=rngs)
        self.score = nnx.Linear(hidden, hidden, use_bias=False, dtype=dtype, rngs=rngs)
        self.combine = nnx.Linear(2 * hidden, hidden, use_bias=False, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(hidden, tgt_vocab, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout)

    def encode(self, src: jax.Array, src_mask: jax.Array, *,
               rngs: nnx.Rngs | None = None) -> tuple[Memory, DecoderState]:
        """Encodes source ids [B, S]; returns the memory and the decoder's first state."""
        x = self.dropout(self.src_embed(src), rngs=rngs)
        values, ((_, h_fwd), (_, h_bwd)) = self.encoder(x, src_mask)
        h = jnp.tanh(self.bridge(jnp.concatenate([h_fwd, h_bwd], axis=-1))).astype(jnp.float32)
        memory = Memory(values=values, keys=self.score(values), mask=src_mask)
        return memory, DecoderState(c=jnp.zeros_like(h), h=h, feed=jnp.zeros_like(h))

    def step(self, memory: Memory, state: DecoderState,
             embedded: jax.Array) -> tuple[DecoderState, jax.Array]:
        """One decoder step on embedded previous tokens [B, E]: new state, logits [B, V]."""
        c, h = self.decoder.step((state.c, state.h), jnp.concatenate([embedded, state.feed], -1))
        scores = jnp.einsum("bsg,bg->bs", memory.keys, h.astype(memory.keys.dtype))
        scores = scores.astype(jnp.float32)
        scores = jnp.where(memory.mask > 0, scores, jnp.finfo(scores.dtype).min)
        weights = jax.nn.softmax(scores, axis=-1)
        context = jnp.einsum("bs,bsv->bv", weights.astype(memory.values.dtype), memory.values)
        feed = jnp.tanh(self.combine(jnp.concatenate([context, h.astype(context.dtype)], -1)))
        return DecoderState(c=c, h=h, feed=feed.astype(jnp.float32)), self.out(feed).astype(
            jnp.float32)

    def step_tokens(self, memory: Memory, state: DecoderState,
                    tokens: jax.Array) -> tuple[DecoderState, jax.Array]:
        """`step` on token ids [B]: the function a search calls."""
        return self.step(memory, state, self.tgt_embed(tokens))

    def __call__(self, src: jax.Array, src_mask: jax.Array, tgt_in: jax.Array, *,
                 rngs: nnx.Rngs | None = None) -> jax.Array:
        """Teacher-forced logits [B, T, V] for target inputs `tgt_in` [B, T] (BOS first)."""
        memory, state = self.encode(src, src_mask, rngs=rngs)
        embedded = self.dropout(self.tgt_embed(tgt_in), rngs=rngs)

        _, logits = jax.lax.scan(functools.partial(self.step, memory), state,
                                 jnp.swapaxes(embedded, 0, 1))
        return jnp.swapaxes(logits, 0, 1)
