"""Several processes (hosts) training one model, through JAX's own runtime.

Every process runs the same program on its own devices; `jax.distributed` connects them
so that one mesh spans all of their devices. Process 0 (the primary) alone writes files
that are not checkpoints (orbax coordinates its own multi-process writes) and downloads
data first, while the others wait, then read its cache.
"""

import contextlib
from collections.abc import Iterator

import jax
from jax.experimental import multihost_utils

from zoo.errors import ZooError

HEARTBEAT_SECONDS = 10  # a process whose peer died aborts this long after (no hang)
CONNECT_SECONDS = 120  # how long processes wait for each other at start-up


def initialize(num_processes: int | None, process_id: int | None,
               coordinator: str | None) -> None:
    """Joins the run of `num_processes` processes; nothing to do for one process.

    Must be called before anything touches a JAX device. On CPU the processes exchange
    data through gloo collectives.

    Raises:
      ZooError: for a missing or malformed coordinator address or process id.
    """
    if not num_processes or num_processes == 1:
        if process_id not in (None, 0):
            raise ZooError(f"--process-id {process_id} needs --num-processes N > {process_id}")
        return
    if num_processes < 1:
        raise ZooError(f"--num-processes {num_processes}: must be at least 1")
    if process_id is None or not 0 <= process_id < num_processes:
        raise ZooError(f"--num-processes {num_processes} needs --process-id between 0 and "
                       f"{num_processes - 1} (a different one in each process)")
    host, _, port = (coordinator or "").rpartition(":")
    if not host or not port.isdigit():
        given = f"--coordinator {coordinator!r} is not" if coordinator else "needs"
        raise ZooError(f"--num-processes {num_processes} {given} HOST:PORT, process 0's "
                       f"address, the same in every process (e.g. 10.0.0.1:12345)")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=CONNECT_SECONDS,
                               heartbeat_timeout_seconds=HEARTBEAT_SECONDS)


def is_primary() -> bool:
    """Whether this process writes logs, reports and downloads (process 0)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier called `name`."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def primary_first(name: str) -> Iterator[None]:
    """Runs the block on the primary first, then on the others (e.g. a cached download)."""
    if not is_primary():
        barrier(name)
    yield
    if is_primary():
        barrier(name)
