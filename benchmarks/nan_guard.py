"""Cost of the NaN/Inf guard in the compiled train step (`steps.commit_if_finite`).

    python -m benchmarks.nan_guard [--steps 100] [--rounds 5] [--set model=mlp ...]

Compiles the classification task's step under `train.on_nan=raise` (the finite flag
only) and `skip` (the flag, and the old state kept in place of a non-finite update), and
times them in alternating rounds on the same batch: median wall and process CPU time
per step of each. On a busy machine trust CPU time; wall time shows what the select
costs in parallelism (it waits for the whole update), which single-thread CPU time hides.
"""

import argparse
import statistics
import time

import jax
import numpy as np

from zoo.config import apply_overrides
from zoo.data import loader
from zoo.harness.trainer import open_session
from zoo.registry import get_task
from zoo_hardware import placement

POLICIES = ("raise", "skip")


def _time(train, state, batch, n: int) -> tuple[float, float, object]:
    """Wall and CPU seconds per step of `n` steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        state, _ = train(state, batch, np.int32(i))
    jax.block_until_ready(state)
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n, state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        help="classification config overrides, e.g. model=mlp")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    task_cls = get_task("classification")
    sessions = {policy: open_session(task_cls(apply_overrides(
        task_cls.Config(), [*args.overrides, f"train.on_nan={policy}"]))) for policy in POLICIES}
    cfg = sessions["raise"].task.config.train
    host = next(loader.train_batches(sessions["raise"].data.splits["train"], cfg.batch_size,
                                     seed=0, epoch=0))
    times = {policy: ([], []) for policy in POLICIES}
    for _ in range(args.rounds):
        for policy, s in sessions.items():
            wall, cpu, s.state = _time(s.steps.train, s.state, placement.put_batch(host, s.mesh),
                                       args.steps)
            times[policy][0].append(wall)
            times[policy][1].append(cpu)
    wall, cpu = ({p: statistics.median(times[p][i]) * 1e3 for p in POLICIES} for i in (0, 1))
    params = sum(x.size for x in jax.tree.leaves(sessions["raise"].state["model"]))
    print(f"{sessions['raise'].task.config.model} ({params:,} params, batch "
          f"{cfg.batch_size}, {jax.devices()[0].platform}) ms/step, wall | CPU: "
          f"on_nan=raise (flag) {wall['raise']:.2f} | {cpu['raise']:.2f}, "
          f"on_nan=skip (flag + keep old state) {wall['skip']:.2f} | {cpu['skip']:.2f}; "
          f"skip costs {100 * (wall['skip'] / wall['raise'] - 1):+.1f}% wall, "
          f"{100 * (cpu['skip'] / cpu['raise'] - 1):+.1f}% CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
