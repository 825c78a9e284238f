"""The zoo harness itself: `open_session` + `train_steps`, exactly what `zoo run` executes."""

import itertools

import jax

from benchmarks.timing import Throughput, measure
from zoo.data import loader
from zoo.harness.trainer import open_session, train_steps
from zoo_hardware import roofline


def train(workload, *, steps_per_window, windows) -> Throughput:
    session = open_session(workload.task)
    batch_size = workload.task.config.train.batch_size
    arrays = session.data.splits["train"]
    batches = itertools.chain.from_iterable(
        loader.train_batches(arrays, batch_size, seed=0, epoch=e) for e in itertools.count())
    steps = train_steps(session, batches, 0)

    def run(n):
        for _ in range(n):
            next(steps)
        jax.block_until_ready(session.state)

    result = measure("zoo harness", workload.model, batch_size, run,
                     compile_seconds=session.steps.compile_seconds,
                     steps_per_window=steps_per_window, windows=windows)
    result.flops_per_example = roofline.step_cost(session.steps.train).flops / batch_size
    return result
