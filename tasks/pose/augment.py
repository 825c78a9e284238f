"""On-device augmentation of pose batches, run inside the compiled train step."""

import jax
import jax.numpy as jnp

from zoo.task import Batch


def random_flip(batch: Batch, rng: jax.Array, flip_index: tuple[int, ...]) -> Batch:
    """Mirrors a random half of the images left-right, with their people.

    A mirrored person's left joints are where the right ones were, so joint j of the
    flipped keypoints is joint `flip_index[j]` of the original, with x -> width - x
    (pixel edges, not centres: x in [0, width]). Unlabelled joints stay at (0, 0).
    """
    image = batch["image"]
    width = image.shape[2]
    flip = jax.random.bernoulli(rng, 0.5, (image.shape[0],))
    keypoints = batch["keypoints"][:, :, jnp.array(flip_index)]
    x = jnp.where(keypoints[..., 2] > 0, width - keypoints[..., 0], 0.0)
    keypoints = keypoints.at[..., 0].set(x)
    x0, y0, x1, y1 = jnp.moveaxis(batch["boxes"], -1, 0)
    boxes = jnp.stack([width - x1, y0, width - x0, y1], -1)

    def pick(flipped, original):
        return jnp.where(flip.reshape((-1,) + (1,) * (original.ndim - 1)), flipped, original)

    return {**batch, "image": pick(image[:, :, ::-1], image),
            "keypoints": pick(keypoints, batch["keypoints"]),
            "boxes": pick(boxes, batch["boxes"])}
