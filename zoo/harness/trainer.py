"""`fit`: train, validate each epoch, stop early, checkpoint, resume, test.

The loop is the only place with Python per step, and it does no more than hand the next
(already transferring) batch to the compiled step; scalars come back to the host every
`log_every` steps and at epoch ends, never per step.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.config import to_dict
from zoo.data import loader
from zoo.errors import ZooError
from zoo.harness import reports
from zoo.harness.checkpoints import BEST, LATEST, CheckpointStore
from zoo.harness.optim import make_run_optimizer
from zoo.harness.progress import EpochProgress
from zoo.harness.steps import Steps, build_steps, compile_steps, split_train_state
from zoo.harness.workdir import check_task, config_differences, read_run, write_run
from zoo.hub import weights
from zoo.task import Dataset, Task
from zoo_hardware import distributed, placement, precision


@dataclasses.dataclass
class LoopState:
    """Everything besides arrays that a resumed run needs: saved with each checkpoint."""

    step: int = 0
    epoch: int = 0  # epochs completed
    best_value: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    finished: bool = False
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Adapter:
    """Changes a run makes to a task's model and optimizer without the task knowing.

    Compression uses it to fine-tune any task under pruning masks, shared weights or
    fake quantization, and to load compressed weights for eval and predict.

    Attributes:
      params: model state (a pure dict) loaded into the new model before the optimizer
        is built, so optimizer wrappers initialise from these weights.
      edit_model: changes the freshly built model in place (e.g. quantized layer ops).
      wrap_optimizer: wraps the run's optax transformation (e.g. to keep masks).
    """

    params: Any = None
    edit_model: Callable[[nnx.Module], None] | None = None
    wrap_optimizer: Callable[[optax.GradientTransformation], optax.GradientTransformation] | None = None

    def build(self, task: Task, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        """The task's model with this adapter's edits and weights applied."""
        model = task.build_model(info, rngs)
        if self.edit_model is not None:
            self.edit_model(model)
        if self.params is not None:
            state = nnx.state(model)  # copies: a train step donates (consumes) its state
            nnx.replace_by_pure_dict(state, jax.tree.map(lambda x: jnp.array(x, copy=True), self.params))
            nnx.update(model, state)
        return model


@dataclasses.dataclass
class Session:
    """A task with its data, mesh, model, optimizer and compiled steps, ready to run."""

    task: Task
    data: Dataset
    mesh: jax.sharding.Mesh
    graphdef: Any
    state: Any
    steps: Steps
    steps_per_epoch: int


def limit(arrays: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The first `n` examples (all when n is 0)."""
    return {k: v[:n] if n else v for k, v in arrays.items()}


def open_session(task: Task, *, device: str = "auto", mesh: str | None = None,
                 training: bool = True, adapter: Adapter | None = None) -> Session:
    """Loads data and builds, places and compiles everything a run (or an eval) needs.

    Args:
      mesh: the device mesh, e.g. "data=4,model=2" (default: every device on `data`).
    """
    cfg = task.config
    with distributed.primary_first("load data"):  # process 0 downloads, the others reuse
        data = task.load_data()
    for split in ("train", "val", "test"):
        data.splits[split] = limit(data.splits[split], cfg.train.max_examples)
        if data.size(split) == 0:
            raise ZooError(f"data set {cfg.data!r} has an empty {split} split; "
                           f"it needs examples in train, val and test")
    mesh = placement.make_mesh(device, mesh)
    placement.check_batch_size(cfg.train.batch_size, mesh)
    placement.check_batch_size(cfg.train.eval_batch_size, mesh)
    spe = loader.steps_per_epoch(data.splits["train"], cfg.train.batch_size)
    if spe == 0:
        raise ZooError(f"the train split has {data.size('train')} examples, fewer than one "
                       f"batch of {cfg.train.batch_size}; lower --batch-size")
    tx = make_run_optimizer(cfg, spe * cfg.train.epochs, spe)
    adapter = adapter or Adapter()
    if adapter.wrap_optimizer is not None:
        tx = adapter.wrap_optimizer(tx)
    model = adapter.build(task, data.info, nnx.Rngs(cfg.train.seed))
    precision.check_model(model, precision.get_policy(cfg.train.dtype), task.name)
    optimizer = task.make_optimizer(model, tx)
    graphdef, state = split_train_state(model, optimizer)
    state = placement.place_state(state, mesh)
    steps = build_steps(task, model, optimizer, seed=cfg.train.seed,
                        state_sharding=jax.tree.map(lambda x: x.sharding, state),
                        scalar_sharding=placement.replicated(mesh))
    train_batch = None
    if training:
        train_batch = placement.put_batch(next(loader.train_batches(
            data.splits["train"], cfg.train.batch_size, seed=cfg.train.seed, epoch=0,
            rows=placement.process_rows(mesh, cfg.train.batch_size))), mesh)
    eval_batch = next(loader.eval_batches(data.splits["val"], cfg.train.eval_batch_size))
    steps = compile_steps(steps, state, train_batch,
                          placement.put_batch(placement.own_rows(eval_batch, mesh), mesh))
    return Session(task, data, mesh, graphdef, state, steps, spe)


def prefetch(batches: Iterator[dict], mesh: jax.sharding.Mesh, depth: int = 2) -> Iterator[dict]:
    """Keeps `depth` batches (this process's rows of each) in flight to the devices ahead
    of the one being used."""
    queue: collections.deque = collections.deque()
    for batch in batches:
        queue.append(placement.put_batch(batch, mesh))
        if len(queue) >= depth:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def train_steps(session: Session, batches: Iterator[dict], first_step: int) -> Iterator[tuple[int, dict]]:
    """The hot loop: feeds prefetched batches to the compiled step, yields (steps done, scalars).

    Scalars stay on device; the caller decides when (rarely) to fetch them.
    """
    for step, batch in enumerate(prefetch(batches, session.mesh), start=first_step):
        session.state, out = session.steps.train(session.state, batch, np.int32(step))
        yield step + 1, out


def evaluate(session: Session, split: str) -> dict[str, Any]:
    """The task's metrics over a whole split of `session.data` (padding masked out)."""
    host_batches = list(loader.eval_batches(session.data.splits[split],
                                            session.task.config.train.eval_batch_size))
    own = (placement.own_rows(batch, session.mesh) for batch in host_batches)
    outputs = [session.steps.evaluate(session.state, batch)
               for batch in prefetch(own, session.mesh)]
    metrics = session.task.new_metrics(session.data.info)
    for batch, out in zip(host_batches, placement.fetch(outputs)):
        metrics.update(batch, out)
    return metrics.compute()


def fit(task: Task, workdir: str | Path, *, device: str = "auto", mesh: str | None = None,
        quiet: bool = False, init_params: Mapping[str, np.ndarray] | None = None,
        adapter: Adapter | None = None) -> dict[str, Any]:
    """Trains `task` in `workdir` (resuming if it holds a run), tests, writes metrics.json.

    In a multi-process run every process calls `fit`; only process 0 writes reports.

    Args:
      mesh: the device mesh, e.g. "data=4,model=2" (default: every device on `data`).
      init_params: model weights by path to start from, e.g. pretrained ones from
        `zoo.hub` (fresh runs only). Layers whose shapes differ (a new head) keep their
        fresh initialisation; the log says which.
      adapter: optional changes to the task's model and optimizer (see `Adapter`).

    Returns:
      The contents written to metrics.json.
    """
    workdir = Path(workdir)
    cfg = task.config
    record = read_run(workdir)
    if record is not None:
        check_task(workdir, record, task.name)
        changed = config_differences(record["config"], to_dict(cfg))
        if changed:
            raise ZooError(f"{workdir} holds a run with a different config "
                           f"({', '.join(changed)}); repeat its options to resume, "
                           f"or use a new --workdir")
    primary = distributed.is_primary()
    progress = EpochProgress(cfg.train.epochs, quiet=quiet or not primary)
    session = open_session(task, device=device, mesh=mesh, adapter=adapter)
    progress.log(f"{task.name}: model {cfg.model}, data {cfg.data} "
                 f"({session.data.size('train')}/{session.data.size('val')}/"
                 f"{session.data.size('test')} train/val/test), "
                 f"{placement.describe(session.mesh)}, {cfg.train.dtype}; "
                 f"compiled in {session.steps.compile_seconds:.1f}s"
                 f"{_cache_note(session.steps)}")
    workdir.mkdir(parents=True, exist_ok=True)
    if primary:
        write_run(workdir, task.name, cfg, session.data.info)
    store = CheckpointStore(workdir)
    loop = LoopState()
    if store.latest_step() is not None:
        state, meta = store.restore(LATEST, nnx.to_pure_dict(session.state))
        nnx.replace_by_pure_dict(session.state, state)
        loop = LoopState(**meta)
        progress.log(f"resumed from {workdir} at epoch {loop.epoch}, step {loop.step}")
    elif init_params is not None:
        report = weights.load_into(session.state["model"], init_params, strict=False)
        session.state = placement.place_state(session.state, session.mesh)
        progress.log(f"initialised from pretrained weights: {report}")
    trainer = _Trainer(session, loop, progress, store, workdir)
    t0 = time.perf_counter()
    try:
        while not loop.finished:
            trainer.train_epoch()
        store.wait()
        test = trainer.test()
    finally:
        trainer.close()
    result = {"task": task.name, "model": cfg.model, "dataset": cfg.data, "split": "test",
              "metrics": test, "epochs": loop.epoch,
              "train_seconds": round(sum(r["seconds"] for r in loop.history), 1),
              "best_epoch": loop.best_epoch + 1, "wall_seconds": round(time.perf_counter() - t0, 1)}
    if primary:
        reports.write_json(workdir / "metrics.json", result)
    progress.log(f"test: {_fmt(test)} -> {workdir / 'metrics.json'}")
    return result


class _Trainer:
    """The epoch loop of one `fit` call, with its logs and checkpoints."""

    def __init__(self, session: Session, loop: LoopState, progress: EpochProgress,
                 store: CheckpointStore, workdir: Path):
        self.session, self.loop, self.progress, self.store = session, loop, progress, store
        self.workdir = workdir
        self.primary = distributed.is_primary()
        self.tensorboard = reports.TensorBoard(workdir, enabled=self.primary)

    def train_epoch(self) -> None:
        """Trains to the end of the current epoch, validates, checkpoints, logs."""
        session, loop, cfg = self.session, self.loop, self.session.task.config
        spe, bs = session.steps_per_epoch, cfg.train.batch_size
        start = loop.step - loop.epoch * spe
        self.progress.start_epoch(loop.epoch, spe, start)
        t0 = time.perf_counter()
        outputs = []
        batches = loader.train_batches(session.data.splits["train"], bs, seed=cfg.train.seed,
                                       epoch=loop.epoch, start=start,
                                       rows=placement.process_rows(session.mesh, bs))
        for loop.step, out in train_steps(session, batches, loop.step):
            outputs.append(out)
            i = loop.step - loop.epoch * spe
            values = None
            if i % cfg.train.log_every == 0:  # the only host sync inside an epoch
                values = jax.device_get(out)
                self.tensorboard.scalars(loop.step, {f"train/{k}": v for k, v in values.items()})
            self.progress.advance(i, (i - start) * bs, values)
        train = _mean(jax.device_get(outputs))
        val = evaluate(session, "val")
        row = {"epoch": loop.epoch + 1, "step": loop.step,
               "seconds": round(time.perf_counter() - t0, 2),
               **{f"train/{k}": v for k, v in train.items()},
               **{f"val/{k}": v for k, v in val.items() if np.isscalar(v)}}
        loop.history.append(row)
        loop.epoch += 1
        improved = _update_early_stopping(session.task, loop, val)
        loop.finished = loop.finished or loop.epoch >= cfg.train.epochs
        self.progress.end_epoch(loop.epoch - 1, {k: v for k, v in row.items() if "/" in k})
        self.tensorboard.scalars(loop.step, {k: v for k, v in row.items() if k.startswith("val/")})
        self._checkpoint(best=improved)
        if self.primary:
            reports.write_history(self.workdir, loop.history)

    def _checkpoint(self, *, best: bool) -> None:
        meta = dataclasses.asdict(self.loop)
        pure = nnx.to_pure_dict(self.session.state)
        if best:
            self.store.save(BEST, self.loop.step, pure, meta)
        self.store.save(LATEST, self.loop.step, pure, meta)

    def test(self) -> dict[str, Any]:
        """Test metrics of the best checkpoint."""
        state, _ = self.store.restore(BEST, nnx.to_pure_dict(self.session.state))
        nnx.replace_by_pure_dict(self.session.state, state)
        return evaluate(self.session, "test")

    def close(self) -> None:
        self.tensorboard.close()
        self.store.close()


def _update_early_stopping(task: Task, loop: LoopState, val: Mapping[str, Any]) -> bool:
    """Records the epoch's validation metric; returns whether it is the best so far."""
    es = task.config.early_stopping
    name = es.metric or task.metric
    if name not in val:
        raise ZooError(f"early_stopping.metric {name!r} is not a validation metric of "
                       f"{task.name!r}; choose from {', '.join(sorted(val))}")
    value = float(val[name])
    sign = 1.0 if task.metric_mode == "max" else -1.0
    improved = loop.best_value is None or sign * (value - loop.best_value) > es.min_delta
    if improved:
        loop.best_value, loop.best_epoch, loop.bad_epochs = value, loop.epoch - 1, 0
    else:
        loop.bad_epochs += 1
        if es.patience and loop.bad_epochs >= es.patience:
            loop.finished = True
    return improved


def _mean(outputs: list[dict]) -> dict[str, float]:
    """Per-key means of a list of scalar dicts."""
    return {k: float(np.mean([o[k] for o in outputs])) for k in outputs[0]} if outputs else {}


def _cache_note(steps: Steps) -> str:
    return (f" ({steps.cached_programs} program(s) from the compilation cache)"
            if steps.cached_programs else "")


def _fmt(metrics: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if np.isscalar(v))
