"""Which devices hold each array of the train state: a rule from shapes to shardings.

Parameters and optimizer state are replicated over `data`. Over `model`, an array big
enough to be worth splitting is split along its largest dimension that divides evenly;
everything else is replicated. The rule sees only shapes, so Adam's moments follow
their parameters, and a checkpoint written under one mesh restores under any other.
"""

import math
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MIN_SPLIT_SIZE = 2**14  # elements (64 KiB of float32): smaller arrays are not worth a collective


def partition_spec(shape: tuple[int, ...], model_size: int,
                   min_size: int = MIN_SPLIT_SIZE) -> PartitionSpec:
    """The spec of one array of `shape` on a mesh whose `model` axis has `model_size` devices.

    Example:
      partition_spec((800, 500), 2) == PartitionSpec("model", None)
    """
    if model_size <= 1 or math.prod(shape) < min_size:
        return PartitionSpec()
    divisible = [i for i, n in enumerate(shape) if n % model_size == 0]
    if not divisible:
        return PartitionSpec()
    axis = max(divisible, key=lambda i: (shape[i], i))
    return PartitionSpec(*("model" if i == axis else None for i in range(len(shape))))


def state_shardings(tree: Any, mesh: Mesh, min_size: int = MIN_SPLIT_SIZE) -> Any:
    """A tree of `NamedSharding`s, one per array of `tree` (arrays or shape-dtype structs)."""
    model_size = mesh.shape.get("model", 1)
    return jax.tree.map(
        lambda x: NamedSharding(mesh, partition_spec(np.shape(x), model_size, min_size)), tree)
