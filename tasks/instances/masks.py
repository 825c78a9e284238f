"""CondInst training targets, loss and decoding for instance masks, all pure JAX.

The detector part is CenterNet's (`zoo.models.centernet`): heatmap peaks at box centres,
offsets and sizes. Each object's mask network is generated from the head features at its
centre cell;
in training that is the ground-truth centre, at evaluation the detected peak, and its
relative coordinates are taken from that cell's centre either way. Masks are learned
with the Dice loss at full resolution (Milletari et al., 2016), which ignores how small
an object is against its image.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.models import centernet

Outputs = dict[str, jax.Array]


def instance_masks(instances: jax.Array, count: int) -> jax.Array:
    """(B, K, H, W) float masks of slots 0..K-1 from a (B, H, W) id map (slot j is j + 1)."""
    ids = jnp.arange(1, count + 1, dtype=instances.dtype)
    return (instances[:, None] == ids[None, :, None, None]).astype(jnp.float32)


def cell_centres(cells: jax.Array, width: int, stride: int) -> jax.Array:
    """(..., 2) pixel (x, y) centres of flat cell indices of a grid `width` cells wide."""
    xy = jnp.stack([cells % width, cells // width], -1).astype(jnp.float32)
    return (xy + 0.5) * stride


def object_masks(model: nnx.Module, outputs: Outputs, cells: jax.Array) -> jax.Array:
    """(B, K, H, W) mask logits of the objects whose centres are flat `cells` (B, K)."""
    features = centernet.gather_cells(outputs["features"], cells)
    centres = cell_centres(cells, outputs["features"].shape[2], model.stride)
    return model.masks(outputs["mask_features"], features, centres)


def dice_loss(logits: jax.Array, truth: jax.Array, weights: jax.Array) -> jax.Array:
    """Mean over objects of weight 1 of 1 - Dice(sigmoid(logits), truth), (B, K, H, W)."""
    p = jax.nn.sigmoid(logits.astype(jnp.float32))
    overlap = jnp.sum(p * truth, (2, 3))
    total = jnp.sum(p * p, (2, 3)) + jnp.sum(truth, (2, 3))
    dice = (2 * overlap + 1.0) / (total + 1.0)
    return jnp.sum((1 - dice) * weights) / jnp.maximum(weights.sum(), 1.0)


def loss(model: nnx.Module, outputs: Outputs, batch: dict[str, jax.Array], *,
         size_weight: float, mask_weight: float,
         image_weights: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """CenterNet's loss plus `mask_weight` times the Dice loss of every real object's mask.

    `image_weights` (B,) of 0 leave images (eval padding) out of the loss entirely.
    """
    heat = outputs["heatmap"]
    targets = centernet.encode(batch["boxes"], batch["classes"], batch["box_valid"],
                               grid=heat.shape[1:3], stride=model.stride,
                               num_classes=heat.shape[-1])
    total, parts = centernet.loss(outputs, targets, size_weight=size_weight,
                                  image_weights=image_weights)
    if image_weights is None:
        image_weights = jnp.ones(heat.shape[0])
    truth = instance_masks(batch["instances"], batch["boxes"].shape[1])
    weights = targets["valid"] * image_weights[:, None]
    mask_loss = dice_loss(object_masks(model, outputs, targets["index"]), truth, weights)
    return total + mask_weight * mask_loss, {**parts, "mask_loss": mask_loss}


def decode(model: nnx.Module, outputs: Outputs, *, k: int, nms_iou: float,
           class_agnostic: bool) -> Outputs:
    """The top `k` objects per image: CenterNet's boxes, scores and classes (suppressed
    ones score 0) plus "mask_logits" (B, k, H, W) at input resolution."""
    found = centernet.decode(outputs, stride=model.stride, k=k, nms_iou=nms_iou,
                             class_agnostic=class_agnostic)
    return {"boxes": found["boxes"], "scores": found["scores"], "classes": found["classes"],
            "mask_logits": object_masks(model, outputs, found["cells"])}
