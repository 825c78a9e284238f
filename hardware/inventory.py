"""What this run can use: backends, devices, their memory, and which process this is."""

from typing import Any

import jax

from zoo_hardware.catalogue import device_memory

BACKENDS = ("cpu", "gpu", "tpu")


def describe() -> dict[str, Any]:
    """A JSON-able inventory of the JAX runtime as this process sees it."""
    backends = {}
    for name in BACKENDS:
        try:
            backends[name] = len(jax.devices(name))
        except RuntimeError:
            continue
    return {
        "default_backend": jax.default_backend(),
        "backends": backends,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "devices": [{"id": d.id, "kind": d.device_kind, "platform": d.platform,
                     "process": d.process_index,
                     "memory_bytes": device_memory(d) if d.process_index == jax.process_index()
                     else None}
                    for d in jax.devices()],
    }
