"""`fit`: train, validate each epoch, stop early, checkpoint, resume, test.

The loop is the only place with Python per step, and it does no more than hand the next
(already transferring) batch to the compiled step and read a stop flag; scalars come
back to the host every `log_every` steps, before checkpoints and at epoch ends, never
per step. Faults are handled by small modules: `preemption` (SIGTERM/SIGINT),
`scalars` (the NaN/Inf policy), `checkpoints` (manifests, fallback, full disks).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from zoo.config import validate
from zoo.data import loader
from zoo.data.pipeline import Inputs
from zoo.errors import ZooError
from zoo.harness import inputs as session_inputs
from zoo.harness import reports
from zoo.harness.callbacks import Callback
from zoo.harness.checkpoints import BEST, LATEST, CheckpointStore
from zoo.harness.faults import explained, nan_origin
from zoo.harness.lock import WorkdirLock
from zoo.harness.memory import PeakMemory
from zoo.harness.model_setup import ModelSetup
from zoo.harness.optim import hold_frozen_backbone, make_run_optimizer, make_schedule
from zoo.harness.preemption import Preempted, StopSignal
from zoo.harness.progress import EpochProgress
from zoo.harness.scalars import NonFiniteStep, ScalarLog
from zoo.harness.steps import (Steps, build_steps, compile_steps, inference_view,
                               merge_train_state, split_train_state)
from zoo.harness.workdir import (apply_changes, check_checkpoints_left, check_data,
                                 check_resumable, read_run, record_reading, write_run)
from zoo.io.files import write_json
from zoo.io.weights import LoadReport
from zoo.paths import cache_dir
from zoo.registry import plugin_code
from zoo.task import Dataset, Metrics, Task
from zoo_hardware import compilation, distributed, placement, precision


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
    partial_epoch: dict[str, Any] = dataclasses.field(default_factory=dict)  # scalars.EpochSums
    bad_examples: list[str] = dataclasses.field(default_factory=list)  # skipped, distinct


@dataclasses.dataclass
class Session:
    """A task with its data, mesh, model, optimizer and compiled steps, ready to run."""

    task: Task
    data: Dataset
    inputs: Inputs  # the batches of data's splits (worker processes for streamed ones)
    mesh: jax.sharding.Mesh
    graphdef: Any
    state: Any
    steps: Steps
    steps_per_epoch: int
    loaded: LoadReport | None = None  # what loading the setup's weights did

    def close(self) -> None:
        """Stops the input workers (if any)."""
        self.inputs.close()


def open_session(task: Task, *, device: str = "auto", mesh: str | None = None,
                 training: bool = True, setup: ModelSetup = ModelSetup(),
                 data: Dataset | None = None,
                 check_data: Callable[[Dataset], None] = lambda data: None,
                 phase: Callable[[str], ContextManager] = lambda what: contextlib.nullcontext([])
                 ) -> Session:
    """Loads data and builds, places and compiles everything a run (or an eval) needs.

    Args:
      mesh: the device mesh, e.g. "data=4,model=2" (default: every device on `data`).
      setup: the weights, layer edits and optimizer wrapper to build with (see
        `ModelSetup`); by default the task's own fresh model.
      data: the data set, if not `task.load_data()` (e.g. a card's, read from the
        user's copy: `zoo.hub.card_data`).
      check_data: called with the data as soon as it is loaded (before building and
        compiling): a resumed run compares the data's identity there.
      phase: `phase("loading data")` wraps each long step (`EpochProgress.phase`: says
        it as it starts and how long it took).
    """
    compilation.enable_persistent_cache(cache_dir("jax-cache"))  # for library users too
    cfg = task.config
    with phase(f"loading data {cfg.data}" if data is None else "loading data") as outcome:
        data = session_inputs.load(task, data)
        outcome.append("/".join(f"{data.size(s):,}" for s in ("train", "val", "test")) +
                       " train/val/test examples")
    check_data(data)
    mesh = placement.make_mesh(device, mesh)
    placement.check_batch_size(cfg.train.batch_size, mesh)
    placement.check_batch_size(cfg.train.eval_batch_size, mesh)
    inputs = session_inputs.open_inputs(task, data)
    try:
        with phase(f"building {cfg.model} and compiling {1 + training * inputs.train_programs} "
                   f"program(s)"):
            return _build_session(task, data, inputs, mesh, training, setup)
    except BaseException:
        inputs.close()
        raise


def _build_session(task: Task, data: Dataset, inputs: Inputs, mesh: jax.sharding.Mesh,
                   training: bool, setup: ModelSetup) -> Session:
    cfg = task.config
    spe = inputs.steps_per_epoch(cfg.train.batch_size)
    tx = make_run_optimizer(cfg, spe * cfg.train.epochs, spe)
    if setup.wrap_optimizer is not None:
        tx = setup.wrap_optimizer(tx)
    with plugin_code(task, "build_model"):
        model, loaded = setup.build(task, data.info, nnx.Rngs(cfg.train.seed))
    precision.check_model(model, precision.get_policy(cfg.train.dtype), task.name)
    optimizer = task.make_optimizer(model, tx)
    hold_frozen_backbone(model, cfg.optimizer)
    graphdef, state = split_train_state(model, optimizer)
    state = placement.place_state(state, mesh)
    steps = build_steps(task, model, optimizer, seed=cfg.train.seed,
                        state_sharding=jax.tree.map(lambda x: x.sharding, state),
                        scalar_sharding=placement.replicated(mesh))
    train_batches = []
    if training:
        first = next(inputs.train(cfg.train.batch_size, epoch=0,
                                  rows=placement.process_rows(mesh, cfg.train.batch_size)))
        train_batches = [placement.put_batch(b, mesh) for b in inputs.bucket_shapes(first)]
    eval_batch = next(inputs.evaluate("val", cfg.train.eval_batch_size,
                                      placement.process_rows(mesh, cfg.train.eval_batch_size)))
    steps = compile_steps(steps, state, train_batches, placement.put_batch(eval_batch, mesh))
    return Session(task, data, inputs, mesh, graphdef, state, steps, spe, loaded)


def prefetch(batches: Iterator[dict], mesh: jax.sharding.Mesh,
             depth: int = 2) -> Iterator[tuple[dict, dict]]:
    """Keeps `depth` batches (this process's rows of each) in flight to the devices ahead
    of the one being used; yields (host batch, device batch)."""
    queue: collections.deque = collections.deque()
    for batch in batches:
        queue.append((batch, placement.put_batch(batch, mesh)))
        if len(queue) >= depth:
            yield queue.popleft()
    while queue:
        yield queue.popleft()


def train_steps(session: Session, batches: Iterator[dict], first_step: int) -> Iterator[tuple[int, dict]]:
    """The hot loop: feeds prefetched batches to the compiled step, yields (steps done, scalars).

    Scalars stay on device; the caller decides when (rarely) to fetch them.
    """
    for step, (_, batch) in enumerate(prefetch(batches, session.mesh), start=first_step):
        session.state, out = session.steps.train(session.state, batch, np.int32(step))
        session.inputs.device_busy = functools.partial(_computing, out)  # for its input wait
        yield step + 1, out


def _computing(out: Any) -> bool:
    """Whether the step that returns `out` is still running."""
    return not all(leaf.is_ready() for leaf in jax.tree.leaves(out))


def evaluate(session: Session, split: str, on_batch: Callable[[], None] = lambda: None
             ) -> dict[str, Any]:
    """The task's metrics over a whole split of `session.data` (padding masked out)."""
    return accumulate(session, split, on_batch).compute()


def eval_batches(session: Session, split: str) -> int:
    """How many batches `accumulate` runs over `split` (for progress bars)."""
    return -(-session.data.size(split) // session.task.config.train.eval_batch_size)


def accumulate(session: Session, split: str, on_batch: Callable[[], None] = lambda: None
               ) -> Metrics:
    """The task's `Metrics`, updated with every batch of a split of `session.data`;
    `on_batch()` after each (a progress bar's tick).

    Streamed: each process reads its own rows of a batch, and at most a few batches are
    held at a time; the metrics see whole batches (gathered from every process).
    """
    size = session.task.config.train.eval_batch_size
    batches = session.inputs.evaluate(split, size, placement.process_rows(session.mesh, size))
    metrics = session.task.new_metrics(session.data.info)
    pending: collections.deque = collections.deque()
    for host, batch in prefetch(batches, session.mesh):
        pending.append((host if jax.process_count() == 1 else batch,
                        session.steps.evaluate(session.state, batch)))
        if len(pending) > 2:
            metrics.update(*placement.fetch(pending.popleft()))
            on_batch()
    for item in pending:
        metrics.update(*placement.fetch(item))
        on_batch()
    return metrics


def fit(task: Task, workdir: str | Path, *, device: str = "auto", mesh: str | None = None,
        quiet: bool = False, setup: ModelSetup = ModelSetup(),
        last_good: bool = False, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Trains `task` in `workdir` (resuming if it holds a run), tests, writes metrics.json.

    In a multi-process run every process calls `fit`; only process 0 writes reports.

    Args:
      mesh: the device mesh, e.g. "data=4,model=2" (default: every device on `data`).
      setup: weights to start from, layer edits, an optimizer wrapper (`ModelSetup`).
        Fine-tuning passes a restored model's `setup.fine_tuning()`: layers whose
        shapes differ (a new head) keep their fresh initialisation; the log says which.
        A resumed run continues from its checkpoint instead.
      last_good: resume from the newest checkpoint that passes its manifest, moving
        damaged ones aside (`--resume-from-last-good`); by default a damaged one stops.
      callbacks: per-step and per-epoch hooks (`zoo.Callback`): logging, early stopping.

    Returns:
      The contents written to metrics.json.

    Raises:
      Preempted: after SIGTERM or SIGINT, once the checkpoint is on disk.
      ZooError: for bad config or input, a damaged checkpoint, a non-finite step under
        `on_nan=raise`, or a full disk (the last good checkpoint is always kept).
    """
    workdir = Path(workdir)
    cfg = task.config
    validate(cfg)
    primary = distributed.is_primary()
    progress = EpochProgress(cfg.train.epochs, quiet=quiet or not primary)
    with (WorkdirLock(workdir, progress.log, enabled=primary), StopSignal() as stop,
          PeakMemory() as memory, progress.writing_log(workdir / "train.log", enabled=primary),
          progress.relaying()):
        record = read_run(workdir)
        changes = {} if record is None else check_resumable(workdir, record, task.name, cfg)
        held = {}
        progress.log(f"{task.name}: {'resuming' if record else 'training'} in {workdir}",
                     terminal=False)
        session = open_session(task, device=device, mesh=mesh, setup=setup,
                               check_data=lambda data: held.update(
                                   data=check_data(workdir, record, data, cfg.data)),
                               phase=progress.phase)
        _check_metric_name(session)
        progress.log(describe_session(session))
        note = session_inputs.partial_batch_note(session.inputs, cfg.train.batch_size)
        if note:
            progress.log(note)
        check_checkpoints_left(workdir)
        store = CheckpointStore(workdir)
        with explained(store):
            loop = _resume(store, session, progress, last_good=last_good)
            apply_changes(loop, task, changes, progress.log)
            if primary:
                write_run(workdir, task, session.data.info, held["data"], previous=record,
                          step=loop.step, changes=changes)
                progress.keep_log()  # the run has started: its log is kept from here
            trainer = _Trainer(session, loop, progress, store, workdir, stop, callbacks)
            t0, first_step = time.perf_counter(), loop.step
            try:
                test = trainer.run()
            finally:
                trainer.close()
                progress.log(memory.describe() + session_inputs.bad_note(loop.bad_examples))
                if primary and loop.step > first_step:  # a session that only tested keeps
                    record_reading(workdir, session_inputs.facts(  # the training's facts
                        session.inputs, loop.bad_examples, memory))
        result = {"task": task.name, "model": cfg.model, "dataset": cfg.data, "split": "test",
                  "metrics": test, "epochs": loop.epoch,
                  "train_seconds": round(sum(r["seconds"] for r in loop.history), 1),
                  "best_epoch": loop.best_epoch + 1,
                  "wall_seconds": round(time.perf_counter() - t0, 1)}
        if primary:
            write_json(workdir / "metrics.json", result)
        progress.log(f"test: {_fmt(test)} -> {workdir / 'metrics.json'}")
    return result


def _check_metric_name(session: Session) -> None:
    """Refuses an `early_stopping.metric` that validation does not report, before the
    first epoch (one validation batch names the metrics)."""
    task = session.task
    name = task.config.early_stopping.metric
    if not name or name == task.metric:
        return
    batch = next(loader.eval_batches(session.data.splits["val"], task.config.train.eval_batch_size))
    metrics = task.new_metrics(session.data.info)
    own = placement.put_batch(placement.own_rows(batch, session.mesh), session.mesh)
    metrics.update(batch, placement.fetch([session.steps.evaluate(session.state, own)])[0])
    names = sorted(k for k, v in metrics.compute().items() if np.isscalar(v))
    if name not in names:
        raise ZooError(f"early_stopping.metric {name!r} is not a validation metric of "
                       f"{task.name!r}; choose from {', '.join(names)} "
                       f"(--set early_stopping.metric=...)")


def _resume(store: CheckpointStore, session: Session, progress: EpochProgress, *,
            last_good: bool) -> LoopState:
    """Restores the newest (verified) checkpoint into `session`; a fresh loop if none."""
    restored = store.resume(nnx.to_pure_dict(session.state), last_good=last_good,
                            log=progress.log)
    if restored is None:
        if session.loaded is not None:
            progress.log(f"initialised from pretrained weights: {session.loaded}")
        return LoopState()
    state, meta = restored
    nnx.replace_by_pure_dict(session.state, state)
    loop = LoopState(**meta)
    if not store.steps(BEST):  # the best checkpoint was damaged: the next epoch replaces it
        loop.best_value, loop.best_epoch = None, -1
    progress.log(f"resumed from {store.root.parent} at epoch {loop.epoch}, step {loop.step}")
    return loop


class _Trainer:
    """The epoch loop of one `fit` call, with its logs and checkpoints."""

    def __init__(self, session: Session, loop: LoopState, progress: EpochProgress,
                 store: CheckpointStore, workdir: Path, stop: StopSignal,
                 callbacks: Sequence[Callback] = ()):
        self.session, self.loop, self.progress, self.store = session, loop, progress, store
        self.workdir, self.stop, self.callbacks = workdir, stop, tuple(callbacks)
        self.primary = distributed.is_primary()
        self.curves = reports.Curves(workdir / "curves.png")
        train = session.task.config.train
        self.scalars = ScalarLog(train.on_nan, train.max_bad_steps, loop.partial_epoch)
        self.tensorboard = reports.TensorBoard(workdir, enabled=self.primary)
        spe = session.steps_per_epoch  # the learning rate each step used, for TensorBoard
        self.schedule = make_schedule(session.task.config.optimizer, spe * train.epochs, spe)
        self._bad_before = list(loop.bad_examples)  # left out before this session
        self._reported = 0  # of this session's, already logged

    def run(self) -> dict[str, Any]:
        """Trains the remaining epochs, then tests (the test metrics and the config go to
        TensorBoard's HPARAMS tab)."""
        while not self.loop.finished:
            self.train_epoch()
        self.store.wait()
        test = self.test()
        self.tensorboard.hparams(self.loop.step, self.session.task.config,
                                 {f"test/{k}": v for k, v in test.items() if np.isscalar(v)})
        return test

    def train_epoch(self) -> None:
        """Trains to the end of the current epoch, validates, checkpoints, logs."""
        session, loop, cfg = self.session, self.loop, self.session.task.config
        spe = session.steps_per_epoch
        start = loop.step - loop.epoch * spe
        self.progress.start_epoch(loop.epoch, spe, start)
        t0, waited = time.perf_counter(), session.inputs.wait_seconds
        self._train_steps(start)
        train, skipped = self.scalars.end_epoch()
        stepped, stepped_wait = time.perf_counter() - t0, session.inputs.wait_seconds - waited
        val = self._validate()
        row = {"epoch": loop.epoch + 1, "step": loop.step,
               "seconds": round(time.perf_counter() - t0, 2), "skipped_steps": skipped,
               **{f"train/{k}": v for k, v in train.items()},
               **{f"val/{k}": v for k, v in val.items()}}  # per-class lists too
        loop.history.append(row)
        loop.epoch += 1
        improved = _update_early_stopping(session.task, loop, val)
        loop.finished = loop.finished or loop.epoch >= cfg.train.epochs
        if any([bool(c.on_epoch(loop.epoch, row)) for c in self.callbacks]):  # every one called
            loop.finished = True
            self.progress.log(f"epoch {loop.epoch}: a callback stopped training")
        self.progress.end_epoch(loop.epoch - 1, _scalars(row))
        if skipped:
            self.progress.log(f"epoch {loop.epoch}: dropped {skipped} non-finite step(s)")
        left_out = sum(session.inputs.bad.values()) - self._reported
        self._reported += left_out
        waits = session_inputs.Waits(stepped_wait, stepped,
                                     session.inputs.wait_seconds - waited - stepped_wait)
        for note in session_inputs.epoch_notes(session.inputs, loop.epoch, waits, left_out):
            self.progress.log(note)
        self.tensorboard.scalars(loop.step, {k.replace("train/", "train_epoch/"): v
                                             for k, v in _scalars(row).items()})
        self._checkpoint(best=improved)
        if self.primary:
            reports.write_history(self.workdir, loop.history)
            self.curves.update(loop.history, final=loop.finished)
            model, _ = merge_train_state(session.graphdef, session.state)
            session.task.on_epoch_end(inference_view(model), session.data.info, self.workdir,
                                      loop.epoch)

    def _validate(self) -> dict[str, Any]:
        """Validation metrics, after the task has calibrated the model on them
        (`Task.calibrate`: e.g. decision thresholds, saved with the next checkpoint)."""
        session = self.session
        with self.progress.evaluating("val", eval_batches(session, "val")) as tick:
            metrics = accumulate(session, "val", tick)
        model, optimizer = merge_train_state(session.graphdef, session.state)
        if session.task.calibrate(inference_view(model), metrics):
            state = nnx.state({"model": model, "optimizer": optimizer})
            session.state = placement.place_state(state, session.mesh)
        return metrics.compute()

    def _train_steps(self, start: int) -> None:
        """Runs the epoch's steps from batch `start`, checkpointing at the step cadence and
        stopping (with a checkpoint) when a stop signal has arrived."""
        session, loop, train = self.session, self.loop, self.session.task.config.train
        spe, every = session.steps_per_epoch, train.checkpoint_every_steps
        batches = session.inputs.train(train.batch_size, epoch=loop.epoch, start=start,
                                       rows=placement.process_rows(session.mesh, train.batch_size))
        try:
            for loop.step, out in train_steps(session, batches, loop.step):
                self.scalars.add(loop.step - 1, out)
                i = loop.step - loop.epoch * spe
                values = None
                logging = loop.step % train.log_every == 0  # by global step: across epochs
                asking = [c for c in self.callbacks
                          if c.every_steps and loop.step % c.every_steps == 0]
                if logging or asking:  # host syncs: here, saves, epoch ends
                    values = self.scalars.fetch()
                    if values and logging:
                        self.tensorboard.scalars(loop.step, {
                            **{f"train/{k}": v for k, v in values.items()},
                            "train/lr": float(self.schedule(loop.step - 1))})
                    for callback in asking if values else ():
                        callback.on_step(loop.step, {k: float(v) for k, v in values.items()})
                self.progress.advance(i, (i - start) * train.batch_size, values)
                if every and loop.step % every == 0 and i < spe:
                    self._checkpoint(best=False)
                if self.stop.requested(loop.step):
                    self._stop()
        except FloatingPointError as e:  # jax_debug_nans names the operation
            raise NonFiniteStep(loop.step, nan_origin(e)) from None

    def _checkpoint(self, *, best: bool) -> None:
        """Saves the train and loop state, after the NaN policy has seen every step.

        `best` is on disk before `latest` (which records it) starts, so a kill between
        the two never leaves a `latest` pointing at a best checkpoint that is missing.
        """
        self.scalars.fetch()
        self.loop.partial_epoch = self.scalars.state()
        self.loop.bad_examples = session_inputs.merged(self._bad_before, self.session.inputs.bad)
        meta = dataclasses.asdict(self.loop)
        pure = nnx.to_pure_dict(self.session.state)
        if best:
            self.store.save(BEST, self.loop.step, pure, meta)
            self.store.wait()
        self.store.save(LATEST, self.loop.step, pure, meta)

    def _stop(self) -> None:
        """Checkpoints where the loop stands (unless just saved), then raises `Preempted`."""
        if self.store.latest_step() != self.loop.step:
            self._checkpoint(best=False)
        self.store.wait()
        raise Preempted(self.stop.received, self.loop.step, self.loop.epoch)

    def test(self) -> dict[str, Any]:
        """Test metrics of the best checkpoint (the latest if the best one was damaged)."""
        which = BEST if self.store.steps(BEST) else LATEST
        state, _ = self.store.restore(which, nnx.to_pure_dict(self.session.state))
        nnx.replace_by_pure_dict(self.session.state, state)
        what = f"the best checkpoint (epoch {self.loop.best_epoch + 1})" if which == BEST else which
        with (self.progress.phase(f"testing {what} on {self.session.data.size('test')} examples"),
              self.progress.evaluating("test", eval_batches(self.session, "test")) as tick):
            return evaluate(self.session, "test", tick)

    def close(self) -> None:
        self.progress.stop_bar()
        self.loop.bad_examples = session_inputs.merged(self._bad_before, self.session.inputs.bad)
        try:
            self.store.close()
        finally:
            self.tensorboard.close()
            self.session.close()


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


def describe_session(session: Session) -> str:
    """The run's first log line: task, model, data and how it is read, mesh, compilation."""
    cfg, data, inputs = session.task.config, session.data, session.inputs
    reading = f"; {inputs.describe()}" if inputs.describe() else ""
    return (f"{session.task.name}: model {cfg.model}, data {cfg.data} "
            f"({data.size('train')}/{data.size('val')}/{data.size('test')} "
            f"train/val/test{reading}), {placement.describe(session.mesh)}, "
            f"{cfg.train.dtype}; compiled in {session.steps.compile_seconds:.1f}s"
            f"{_cache_note(session.steps)}")


def _cache_note(steps: Steps) -> str:
    return (f" ({steps.cached_programs} program(s) from the compilation cache)"
            if steps.cached_programs else "")


def _scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """A history row's "split/name" numbers (per-class lists stay in history.jsonl)."""
    return {k: v for k, v in row.items() if "/" in k and np.isscalar(v) and v is not None}


def _fmt(metrics: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if np.isscalar(v))
