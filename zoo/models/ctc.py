"""Connectionist temporal classification (Graves et al., 2006): loss and decoders.

Class 0 is the blank. Label sequences are padded with 0 too (a blank never appears in a
labelling), so decoded outputs and labels share one padded layout: ids [B, L], 0 after
the end. Both decoders are jit-compatible with fixed shapes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

BLANK = 0


def ctc_loss(logits: jax.Array, frame_mask: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-sequence negative log-likelihood of `labels` [B, L] (0-padded) [B]."""
    return optax.ctc_loss(logits, 1.0 - frame_mask, labels, (labels == BLANK).astype(jnp.float32),
                          blank_id=BLANK)


def ctc_greedy(logits: jax.Array, frame_mask: jax.Array) -> jax.Array:
    """Best-path decoding: the argmax class per frame, repeats merged, blanks removed.

    Returns:
      ids [B, T], left-aligned and 0-padded.
    """
    best = jnp.argmax(logits, axis=-1)
    previous = jnp.pad(best[:, :-1], ((0, 0), (1, 0)), constant_values=BLANK)
    keep = (best != BLANK) & (best != previous) & (frame_mask > 0)
    return _compact(best, keep)


def _compact(ids: jax.Array, keep: jax.Array) -> jax.Array:
    """Moves the kept ids of each row to its front, zeros after."""
    batch, steps = ids.shape
    position = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, steps)  # steps: dropped
    rows = jnp.broadcast_to(jnp.arange(batch)[:, None], ids.shape)
    return jnp.zeros_like(ids).at[rows, position].set(ids, mode="drop")


def ctc_beam_search(logits: jax.Array, frame_mask: jax.Array, *, beam: int) -> jax.Array:
    """Prefix beam search: the most probable labelling among `beam` prefixes kept per frame.

    Unlike best-path decoding it sums the probability of every alignment of a prefix
    (ending in a blank or not, merging extensions that reach the same prefix), so it
    finds labellings whose probability is spread over many paths.

    Returns:
      ids [B, T], 0-padded, like `ctc_greedy`.
    """
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jax.vmap(lambda lp, m: _prefix_search(lp, m, beam))(logp, frame_mask)


def _prefix_search(logp: jax.Array, mask: jax.Array, beam: int) -> jax.Array:
    """Prefix beam search over one sequence's log-probabilities [T, V]."""
    steps = logp.shape[0]
    neg_inf = jnp.float32(-jnp.inf)
    init = dict(prefix=jnp.zeros((beam, steps), jnp.int32),
                length=jnp.zeros(beam, jnp.int32),
                last=jnp.full(beam, -1, jnp.int32),  # -1: the empty prefix
                blank=jnp.where(jnp.arange(beam) == 0, 0.0, neg_inf),  # log P(.., ends in blank)
                label=jnp.full(beam, neg_inf))  # log P(prefix, ends in its last label)

    def frame(beams, inputs):
        y, valid = inputs
        new = _extend(beams, y, beam)
        return jax.tree.map(lambda n, o: jnp.where(valid > 0, n, o), new, beams), None

    beams, _ = jax.lax.scan(frame, init, (logp, mask))
    best = jnp.argmax(jnp.logaddexp(beams["blank"], beams["label"]))
    return beams["prefix"][best]


def _extend(b: dict, y: jax.Array, beam: int) -> dict:
    """One frame of prefix beam search: every beam stays or grows by one label."""
    neg_inf = jnp.float32(-jnp.inf)
    k, vocab = b["length"].shape[0], y.shape[0]
    total = jnp.logaddexp(b["blank"], b["label"])
    has_last = b["last"] >= 0
    # Staying: a blank, or a repeat of the last label (which merges into it).
    stay_blank = total + y[BLANK]
    stay_label = jnp.where(has_last, b["label"] + y[jnp.maximum(b["last"], 0)], neg_inf)
    # Growing by label c: a repeat of the last label needs a blank in between.
    is_last = jnp.arange(vocab)[None, :] == b["last"][:, None]
    grow = jnp.where(is_last, b["blank"][:, None], total[:, None]) + y[None, :]
    grow = grow.at[:, BLANK].set(neg_inf)
    # A growth that equals another kept beam (beam j = beam i + last label of j) merges
    # into that beam's "stay" candidate instead of being a duplicate.
    positions = jnp.arange(b["prefix"].shape[1])[None, None, :]
    same_start = jnp.all((b["prefix"][:, None, :] == b["prefix"][None, :, :])
                         | (positions >= b["length"][None, :, None]), axis=-1)  # [j, i]
    child = (same_start & (b["length"][:, None] == b["length"][None, :] + 1)
             & jnp.isfinite(total)[:, None])  # child[j, i]: beam j extends beam i
    grow_into = grow[:, jnp.maximum(b["last"], 0)].T  # [j, i]: grow[i, last[j]]
    stay_label = jnp.logaddexp(stay_label, jax.nn.logsumexp(
        jnp.where(child, grow_into, neg_inf), axis=1))
    duplicate = jnp.any(child[:, :, None] & (jnp.arange(vocab)[None, None, :]
                                             == b["last"][:, None, None]), axis=0)  # [i, c]
    grow = jnp.where(duplicate, neg_inf, grow)
    scores = jnp.concatenate([jnp.logaddexp(stay_blank, stay_label), grow.reshape(-1)])
    _, index = jax.lax.top_k(scores, beam)
    stays = index < k
    source = jnp.where(stays, index, (index - k) // vocab)
    label = jnp.where(stays, b["last"][source], (index - k) % vocab)
    length = b["length"][source] + (~stays).astype(jnp.int32)
    prefix = b["prefix"][source]
    prefix = jnp.where(~stays[:, None] & (positions[0] == length[:, None] - 1),
                       label[:, None], prefix)
    return dict(prefix=prefix, length=length, last=label,
                blank=jnp.where(stays, stay_blank[source], neg_inf),
                label=jnp.where(stays, stay_label[source], grow.reshape(-1)[index - k]))
