"""Cost of the NaN/Inf guard in the compiled train step (`steps.commit_if_finite`).

    python -m benchmarks.nan_guard [--steps 200] [--rounds 5] [--set model=mlp ...]

Compiles the classification task's step twice, with the guard and with it replaced by a
pass-through, and times them in alternating rounds on the same batch; prints the median
per step of each and the difference. It measures process CPU time, not wall time: on a
shared machine other users' load swamps wall-clock differences of a few percent. Run it
with XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" for
steadier figures on CPU.
"""

import argparse
import statistics
import time
from unittest import mock

import jax
import numpy as np

from zoo.config import apply_overrides
from zoo.data import loader
from zoo.harness import steps as steps_lib
from zoo.harness.trainer import open_session
from zoo.registry import get_task
from zoo_hardware import placement


def _unguarded(before, after, metrics):
    del before
    return after, {**metrics, steps_lib.FINITE: jax.numpy.bool_(True)}


def _time(train, state, batch, n: int) -> tuple[float, object]:
    """CPU seconds per step of `n` steps."""
    t0 = time.process_time()
    for i in range(n):
        state, _ = train(state, batch, np.int32(i))
    jax.block_until_ready(state)
    return (time.process_time() - t0) / n, state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], dest="overrides",
                        help="classification config overrides, e.g. model=resnet")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    task_cls = get_task("classification")
    task = task_cls(apply_overrides(task_cls.Config(), args.overrides))
    sessions = {"guarded": open_session(task)}
    with mock.patch.object(steps_lib, "commit_if_finite", _unguarded):
        sessions["unguarded"] = open_session(task)
    cfg = task.config.train
    host = next(loader.train_batches(sessions["guarded"].data.splits["train"], cfg.batch_size,
                                     seed=0, epoch=0))
    times = {name: [] for name in sessions}
    for _ in range(args.rounds):
        for name, s in sessions.items():
            batch = placement.put_batch(host, s.mesh)
            seconds, s.state = _time(s.steps.train, s.state, batch, args.steps)
            times[name].append(seconds)
    median = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    params = sum(x.size for x in jax.tree.leaves(sessions["guarded"].state["model"]))
    print(f"{task.config.model} ({params:,} params, batch {cfg.batch_size}, "
          f"{jax.devices()[0].platform}): guarded {median['guarded']:.3f} CPU ms/step, "
          f"unguarded {median['unguarded']:.3f} CPU ms/step, "
          f"overhead {100 * (median['guarded'] / median['unguarded'] - 1):+.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
