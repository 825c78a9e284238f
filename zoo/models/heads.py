"""Backbone-plus-head models whose decisions need a threshold: multi-label classifiers
and embedding networks, and the ArcFace margin.

Both keep their decision thresholds as `Thresholds` variables: model state that is
never trained but is saved with the weights (checkpoints, hub files), so whatever loads
the model (eval, predict, a published weight) decides exactly as validation chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models.layers import global_avg_pool
from zoo.models.resnet import ResNetBackbone


class Thresholds(nnx.Variable):
    """Decision thresholds chosen on validation data: saved with the weights, not trained."""


class MultiLabelNet(nnx.Module):
    """ResNet backbone, global average pool and one logit per label (sigmoid outputs).

    `thresholds[i]` is the probability above which label i is called present.
    """

    def __init__(self, in_channels: int, num_labels: int, *, backbone: Mapping[str, Any],
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        """`backbone`: `ResNetBackbone`'s keyword arguments (`BackboneConfig.kwargs()`)."""
        self.backbone = ResNetBackbone(in_channels, **backbone, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(self.backbone.widths[-1], num_labels, dtype=dtype, rngs=rngs)
        self.thresholds = Thresholds(jnp.full((num_labels,), 0.5, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits (N, num_labels), float32."""
        return self.head(global_avg_pool(self.backbone(x)[-1])).astype(jnp.float32)


class EmbeddingNet(nnx.Module):
    """Images to `dim`-dimensional embeddings, with a classifier over training identities.

    Backbone, global average pool, linear projection and batch norm give the embedding
    (the ArcFace paper's "BN-FC-BN" neck, without dropout). The classifier exists only
    to train it: `cosine` scores cosines to learned class centres (for margin losses
    such as ArcFace), `linear` is an ordinary softmax layer on the raw embedding.
    `threshold` is the cosine similarity above which two images are called the same
    identity.
    """

    def __init__(self, in_channels: int, dim: int, num_classes: int, *,
                 classifier: Literal["cosine", "linear"], backbone: Mapping[str, Any],
                 dtype: Any = jnp.float32, rngs: nnx.Rngs):
        """`backbone`: `ResNetBackbone`'s keyword arguments (`BackboneConfig.kwargs()`)."""
        self.backbone = ResNetBackbone(in_channels, **backbone, dtype=dtype, rngs=rngs)
        self.project = nnx.Linear(self.backbone.widths[-1], dim, dtype=dtype, rngs=rngs)
        self.neck = nnx.BatchNorm(dim, momentum=0.9, dtype=dtype, rngs=rngs)
        self.classifier = classifier
        if classifier == "cosine":
            # small, as in InsightFace: Adam then turns the directions quickly
            self.centres = nnx.Param(nnx.initializers.normal(0.01)(rngs.params(), (dim, num_classes)))
        else:
            self.logits = nnx.Linear(dim, num_classes, rngs=rngs)
        self.threshold = Thresholds(jnp.asarray(0.5, jnp.float32))

    def features(self, x: jax.Array) -> jax.Array:
        """Raw (unnormalised) embeddings (N, dim), float32."""
        pooled = global_avg_pool(self.backbone(x)[-1])
        return self.neck(self.project(pooled)).astype(jnp.float32)

    def embed(self, x: jax.Array) -> jax.Array:
        """Unit-length embeddings (N, dim): their dot product is the cosine similarity."""
        return l2_normalize(self.features(x))

    def classify(self, features: jax.Array) -> jax.Array:
        """Training-identity scores of raw embeddings: cosines (cosine) or logits (linear)."""
        if self.classifier == "cosine":
            return l2_normalize(features) @ l2_normalize(self.centres[...], axis=0)
        return self.logits(features)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.embed(x)


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps))


def arcface_logits(cosine: jax.Array, labels: jax.Array, *, scale: float,
                   margin: float) -> jax.Array:
    """ArcFace (additive angular margin) logits: s * cos(theta + m) for the true class,
    s * cos(theta) for the others.

    Where theta + m would pass pi (cos(theta + m) would rise again) the true class gets
    s * (cos(theta) - m sin(m)) instead, as in InsightFace, so the logit keeps falling
    as the angle grows.

    Args:
      cosine: (N, C) cosines between embeddings and class centres.
      labels: (N,) int true classes.
    """
    sine = jnp.sqrt(jnp.clip(1.0 - cosine * cosine, 1e-7, 1.0))  # finite gradient at |cos| = 1
    shifted = cosine * jnp.cos(margin) - sine * jnp.sin(margin)
    shifted = jnp.where(cosine > jnp.cos(jnp.pi - margin), shifted,
                        cosine - jnp.sin(jnp.pi - margin) * margin)
    target = jax.nn.one_hot(labels, cosine.shape[-1], dtype=bool)
    return scale * jnp.where(target, shifted, cosine)
