"""CRNN: convolutional column features, a bidirectional LSTM, per-column class scores.

The text-line recognizer of Shi et al. (2015) and of Tesseract 4: a line image becomes
one feature vector per column group, the BiLSTM reads them left to right and right to
left, and a linear layer scores every class (plus the CTC blank) per frame.

Lines of different widths share one padded batch. Each conv layer's output is zeroed
beyond the line's width, exactly what "SAME" zero padding shows an unpadded line, and
the BiLSTM masks padded frames: so a line's scores do not depend on how much padding
its batch has, as long as widths are multiples of `stride` (the data sets round them up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.conv import Conv
from zoo.models.layers import max_pool
from zoo.models.lstm import BiLSTM


class CRNN(nnx.Module):
    """Maps line images [B, H, W, C] in [0, 1] to float32 logits [B, W / stride, classes].

    Example:
      model = CRNN(32, 1, 80, rngs=nnx.Rngs(0))
      logits, frame_mask = model(images, widths)
    """

    def __init__(self, height: int, channels: int, num_classes: int, *,
                 widths: Sequence[int] = (32, 64, 96),
                 pools: Sequence[tuple[int, int]] = ((2, 2), (2, 2), (2, 1)),
                 hidden: int = 128, layers: int = 2, dtype: Any = jnp.float32,
                 rngs: nnx.Rngs):
        if len(widths) != len(pools):
            raise ValueError(f"one pool per conv layer: {len(widths)} widths, {len(pools)} pools")
        self.pools = tuple(tuple(p) for p in pools)
        out_height = height // math.prod(p[0] for p in self.pools)
        if out_height < 1:
            raise ValueError(f"line height {height} is too small for pools {self.pools}")
        sizes = [channels, *widths]
        self.convs = nnx.List([Conv(a, b, (3, 3), dtype=dtype, rngs=rngs)
                               for a, b in zip(sizes, sizes[1:])])
        # Normalized per column (over height and channels), unlike BatchNorm, so padding
        # columns never enter a real column's statistics.
        self.norms = nnx.List([nnx.LayerNorm(b, reduction_axes=(1, 3), dtype=dtype, rngs=rngs)
                               for b in widths])
        self.rnn = BiLSTM(out_height * widths[-1], hidden, layers=layers, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(2 * hidden, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, images: jax.Array, widths: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Returns logits [B, T, classes] and the frame mask [B, T] (1 for real frames)."""
        x, scale = images, 1
        for conv, norm, pool in zip(self.convs, self.norms, self.pools):
            x = jax.nn.relu(norm(conv(x)))
            x = x * _column_mask(widths, scale, x.shape[2])[:, None, :, None]
            x = max_pool(x, pool)
            scale *= pool[1]
        n, h, w, c = x.shape
        columns = jnp.transpose(x, (0, 2, 1, 3)).reshape(n, w, h * c)
        mask = _column_mask(widths, scale, w)
        features, _ = self.rnn(columns, mask)
        return self.head(features).astype(jnp.float32), mask


def _column_mask(widths: jax.Array, scale: int, columns: int) -> jax.Array:
    """[B, columns] float mask of the columns inside each line at 1/scale resolution."""
    return (jnp.arange(columns)[None, :] < -(-widths[:, None] // scale)).astype(jnp.float32)
