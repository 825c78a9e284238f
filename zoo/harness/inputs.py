"""A session's data: the task's splits (or their packed copy), capped and checked, and
the input pipeline that reads their batches."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from zoo.data import packed
from zoo.data.pipeline import Inputs
from zoo.data.sources import ArraySource, Source
from zoo.errors import ZooError
from zoo.harness.memory import PeakMemory
from zoo.registry import plugin_code
from zoo.task import Dataset, Task
from zoo_hardware import distributed

SPLITS = ("train", "val", "test")
SHOWN_BAD = 100  # unreadable examples named in run.json (all are counted)


def load(task: Task, data: Dataset | None = None) -> Dataset:
    """`data`, or else the task's data set: `packed:DIR` for any task, else
    `task.load_data()`; each split capped at `train.max_examples`. Process 0 loads first
    (downloads, caches)."""
    cfg = task.config
    if data is None:
        with distributed.primary_first("load data"), plugin_code(task, "load_data"):
            if cfg.data.startswith(packed.PREFIX):
                data = packed.load_dataset(cfg.data, task.name)
            else:
                data = task.load_data()
    for split in SPLITS:
        data.splits[split] = _cap(data.splits[split], cfg.train.max_examples)
        if data.size(split) == 0:
            raise ZooError(f"data set {cfg.data!r} has an empty {split} split; "
                           f"it needs examples in train, val and test")
    return data


def open_inputs(task: Task, data: Dataset) -> Inputs:
    """The pipeline over `data` with the task's host augmentation and training buckets,
    and the run's worker and bad-example settings."""
    train = task.config.train
    return Inputs(data.splits, seed=train.seed, augment=task.host_augment(data.info),
                  workers=train.workers, on_bad=train.on_bad_example,
                  buckets=task.buckets(data.info))


def partial_batch_note(inputs: Inputs, batch_size: int) -> str:
    """What happens to a training split smaller than one batch ('' otherwise)."""
    n = inputs.size("train")
    if n >= batch_size:
        return ""
    return (f"the train split has {n} examples, fewer than one batch of {batch_size}: each "
            f"epoch is one batch, filled with {batch_size - n} repeated example(s) that its "
            f"\"mask\" leaves out of the loss")


def _cap(split, n: int):
    """`n` examples spread over the split (all when n is 0): splits stored in class order
    keep every class under `--smoke`'s cap."""
    if isinstance(split, Source):
        return split.spread(n)
    return ArraySource(split).spread(n).arrays


class Waits(NamedTuple):
    """An epoch's time with the device idle for lack of input: during its training steps
    (`train_seconds` long) and during validation."""

    train: float
    train_seconds: float
    validation: float


def epoch_notes(inputs: Inputs, epoch: int, waits: Waits, left_out: int) -> list[str]:
    """Log lines after an epoch: the time the device sat idle waiting for the input
    workers, and the examples newly left out as unreadable."""
    notes = []
    if inputs.streamed and inputs.workers:
        share = waits.train / max(waits.train_seconds, 1e-9)
        notes.append(f"epoch {epoch}: the device waited {waits.train:.1f}s for input "
                     f"({share:.0%} of the training steps' time) and {waits.validation:.1f}s "
                     f"in validation, {inputs.workers} worker(s)")
    if left_out:
        notes.append(f"epoch {epoch}: left out {left_out} unreadable example(s) of its "
                     f"training and validation batches (--on-bad-example skip), "
                     f"e.g. {next(iter(inputs.bad))}")
    return notes


def merged(before: Iterable[str], now: Iterable[str]) -> list[str]:
    """The distinct examples ("origin: problem") left out as unreadable by earlier
    sessions of the run (from its checkpoint) and this one. A set, not a tally: a resumed
    run re-reads the batches after its checkpoint (one of them already read ahead of it),
    and every epoch and evaluation meets the same bad files again."""
    return sorted({*before, *now})


def bad_note(bad: Sequence[str]) -> str:
    """'; left out N unreadable example(s) ...' for the run's last line ('' if none)."""
    if not bad:
        return ""
    return (f"; left out {len(bad)} unreadable example(s) (--on-bad-example skip), "
            f"e.g. {bad[0]}")


def facts(inputs: Inputs, bad: Sequence[str], memory: PeakMemory) -> dict[str, Any]:
    """run.json's "reading": how this session read the data (never compared on resume)."""
    return {"streamed": inputs.streamed, "workers": inputs.workers,
            "peak_rss_bytes": memory.peak, "peak_rss_processes": memory.processes,
            "input_wait_seconds": round(inputs.wait_seconds, 2),
            "bad_examples": {"count": len(bad), "examples": list(bad[:SHOWN_BAD])}}
