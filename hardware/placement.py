"""Device meshes and where batches and train state live on them.

Every run trains on a `jax.sharding.Mesh` with the axes ("data", "model"), even on one
CPU, so one code path serves one device, many devices and many hosts: batches are split
along `data`, the train state is replicated or split along `model` (see `sharding`).
In a multi-process run every process holds, and reads, only its own rows of a batch;
`put_batch` joins them into one global array.
"""

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from zoo.errors import ZooError, unknown
from zoo_hardware.sharding import state_shardings

DEVICE_KINDS = ("auto", "cpu", "gpu", "tpu")
AXES = ("data", "model")


def run_devices(kind: str = "auto") -> list[jax.Device]:
    """Every device of `kind` in the run, on all processes ('auto': JAX's default backend).

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


def parse_mesh(spec: str | None) -> dict[str, int]:
    """'data=8,model=2' -> {'data': 8, 'model': 2}; None or '' -> {}.

    Raises:
      ZooError: for an unknown axis, a repeated one or a size that is not a positive int.
    """
    shape: dict[str, int] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, size = part.partition("=")
        name = name.strip()
        if name not in AXES:
            raise unknown("mesh axis", name, AXES)
        if not sep or not size.strip().isdigit() or int(size) < 1 or name in shape:
            raise ZooError(f"--mesh {spec}: write each axis once as NAME=SIZE with a positive "
                           f"size, e.g. --mesh data=4,model=2")
        shape[name] = int(size)
    return shape


def make_mesh(kind: str = "auto", spec: str | None = None) -> Mesh:
    """The ("data", "model") mesh that `spec` asks for (default: every device on `data`).

    A single process may use a prefix of its devices (`--mesh data=2` on 8); a
    multi-process mesh must use every device, so that each process holds a share.
    """
    devices = run_devices(kind)
    shape = parse_mesh(spec)
    model = shape.get("model", 1)
    if "data" not in shape and len(devices) % model:
        raise ZooError(f"--mesh {spec}: model={model} does not divide the {len(devices)} "
                       f"devices; give data=N too")
    data = shape.get("data", len(devices) // model)
    used = data * model
    if used > len(devices):
        raise ZooError(f"--mesh {spec}: needs {used} devices, but {len(devices)} "
                       f"{devices[0].platform} device(s) exist (simulate more on CPU with "
                       f"XLA_FLAGS=--xla_force_host_platform_device_count={used})")
    if used != len(devices) and jax.process_count() > 1:
        raise ZooError(f"--mesh {spec}: a run of {jax.process_count()} processes must use "
                       f"all {len(devices)} devices (data x model = {len(devices)})")
    return jax.make_mesh((data, model), AXES, (AxisType.Auto, AxisType.Auto),
                         devices=devices[:used])


def describe(mesh: Mesh) -> str:
    """'4 cpu devices (data=2, model=2)'."""
    platform = mesh.devices.flat[0].platform
    axes = ", ".join(f"{name}={size}" for name, size in mesh.shape.items())
    return f"{mesh.size} {platform} device(s) ({axes})"


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Split the leading (batch) axis over `data`; copies along `model`."""
    return NamedSharding(mesh, PartitionSpec("data"))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """The global batch must split evenly over the data axis."""
    n = mesh.shape["data"]
    if batch_size % n:
        raise ZooError(f"batch size {batch_size} does not divide over {n} devices of the data "
                       f"axis; use a multiple of {n} (--batch-size) or another --mesh")


def process_rows(mesh: Mesh, batch_size: int) -> slice:
    """The rows of every global batch that live on this process's devices.

    A function of the mesh alone, so each process can read just its share of a batch
    whose order is a function of (seed, epoch, step).
    """
    index_map = data_sharding(mesh).addressable_devices_indices_map((batch_size,))
    rows = sorted({(s.start or 0, batch_size if s.stop is None else s.stop)
                   for (s,) in index_map.values()})
    start, stop = rows[0][0], rows[-1][1]
    if (stop - start) * jax.process_count() != batch_size:
        raise ZooError("this process's devices do not hold one contiguous block of the "
                       "batch; give every process the same number of devices")
    return slice(start, stop)


def own_rows(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, np.ndarray]:
    """This process's rows of a global host batch (all of them in a single process)."""
    rows = process_rows(mesh, len(next(iter(batch.values()))))
    return {k: v[rows] for k, v in batch.items()}


def put_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Starts the (asynchronous) transfer of this process's rows of a batch to the mesh."""
    sharding = data_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(dict(batch), sharding)
    return {k: jax.make_array_from_process_local_data(
                sharding, v, (len(v) * jax.process_count(), *v.shape[1:]))
            for k, v in batch.items()}


def put_state(tree: Any, shardings: Any) -> Any:
    """Places a tree whose values are the same on every process with `shardings`."""
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)
    host = jax.device_get(tree)
    return jax.tree.map(lambda x, s: jax.make_array_from_callback(np.shape(x), s,
                                                                  lambda i: np.asarray(x)[i]),
                        host, shardings)


def place_state(tree: Any, mesh: Mesh) -> Any:
    """Places a train state on `mesh` by the sharding rule (see `sharding`)."""
    return put_state(tree, state_shardings(tree, mesh))


def fetch(tree: Any) -> Any:
    """Host copies of device arrays, gathering rows held by other processes."""
    if jax.process_count() == 1:
        return jax.device_get(tree)

    def one(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable or x.is_fully_replicated:
            return np.asarray(x)
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return jax.tree.map(one, tree)
