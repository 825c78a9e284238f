"""One rank of a two-process run for tests/test_faults.py: `preemption_worker.py PORT RANK`.

Steps in lockstep with the other rank (an all-gather per step, as training would) until
`StopSignal` says every rank has reached the preemption sync point, then prints the step.
"""

import sys
import time

import jax
import numpy as np

jax.config.update("jax_cpu_collectives_implementation", "gloo")
port, rank = int(sys.argv[1]), int(sys.argv[2])
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                           process_id=rank, initialization_timeout=30, heartbeat_timeout_seconds=10)

from jax.experimental import multihost_utils  # noqa: E402

from zoo.harness.preemption import StopSignal  # noqa: E402

with StopSignal() as stop:
    print("ready", flush=True)
    for step in range(100_000):
        if stop.requested(step):
            print(f"rank {rank} stops at step {step} ({stop.received})", flush=True)
            break
        multihost_utils.process_allgather(np.int32(step))
        time.sleep(0.01)
jax.distributed.shutdown()
