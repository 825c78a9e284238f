"""The zoo harness itself: `open_session` + `train_steps`, exactly what `zoo run` executes."""

import itertools
import time

import jax
import numpy as np

from benchmarks.timing import Throughput, measure
from zoo.config import apply_overrides
from zoo.data import loader
from zoo.harness.trainer import open_session, train_steps
from zoo.task import Dataset
from zoo_tasks.classification import ClassificationTask


class _InjectedData(ClassificationTask):
    """The classification task, fed the benchmark's arrays instead of its data spec."""

    arrays: tuple = ()

    def load_data(self) -> Dataset:
        images, labels = self.arrays
        split = {"image": images, "label": labels}
        small = {"image": images[:256], "label": labels[:256]}
        return Dataset({"train": split, "val": small, "test": small},
                       {"classes": [str(i) for i in range(10)], "input_shape": list(images.shape[1:])})


def build_session(model: str, images: np.ndarray, labels: np.ndarray, batch_size: int):
    task_cls = type("Bench", (_InjectedData,), {"arrays": (images, labels)})
    config = apply_overrides(task_cls.Config(), [f"model={model}", "augment=none",
                                                 f"train.batch_size={batch_size}",
                                                 "train.eval_batch_size=256"])
    t0 = time.perf_counter()
    session = open_session(task_cls(config))
    return session, time.perf_counter() - t0


def train(model, images, labels, batch_size, *, steps_per_window, windows) -> Throughput:
    session, setup = build_session(model, images, labels, batch_size)
    arrays = session.data.splits["train"]
    epochs = itertools.count()
    batches = itertools.chain.from_iterable(
        loader.train_batches(arrays, batch_size, seed=0, epoch=e) for e in epochs)
    steps = train_steps(session, batches, 0)

    def run(n):
        for _ in range(n):
            next(steps)
        jax.block_until_ready(session.state)

    return measure("zoo harness", model, batch_size, run, compile_seconds=session.steps.compile_seconds,
                   steps_per_window=steps_per_window, windows=windows)
