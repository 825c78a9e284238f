"""Device meshes and where batches and state live on them.

Every run trains on a `jax.sharding.Mesh` with a `data` axis, even on one CPU, so the
same code scales to many devices: batches are split along `data`, state is replicated.
"""

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from zoo.errors import ZooError

DEVICE_KINDS = ("auto", "cpu", "gpu", "tpu")


def local_devices(kind: str = "auto") -> list[jax.Device]:
    """The devices of `kind` ('auto': JAX's default backend).

    Raises:
      ZooError: if no device of that kind is available, with the install hint.
    """
    if kind not in DEVICE_KINDS:
        raise ZooError(f"--device {kind}: choose from {', '.join(DEVICE_KINDS)}")
    if kind == "auto":
        return jax.devices()
    try:
        return jax.devices(kind)
    except RuntimeError:
        extra = {"gpu": "zoo[gpu]", "tpu": "zoo[tpu]"}.get(kind, "jax")
        raise ZooError(f"--device {kind}: no {kind} device found (JAX backends: "
                       f"{jax.default_backend()}); install {extra!r} or use --device auto") from None


def make_mesh(kind: str = "auto") -> Mesh:
    """A one-axis ("data") mesh over every device of `kind`."""
    devices = local_devices(kind)
    return Mesh(np.asarray(devices), ("data",))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading (batch) axis over the `data` axis."""
    return NamedSharding(mesh, PartitionSpec("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """The global batch must split evenly over the data axis."""
    n = mesh.shape["data"]
    if batch_size % n:
        raise ZooError(f"batch size {batch_size} does not divide over {n} devices; "
                       f"use a multiple of {n} (--batch-size)")


def put_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Starts the (asynchronous) transfer of a host batch to the mesh."""
    return jax.device_put(dict(batch), data_sharding(mesh))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))
