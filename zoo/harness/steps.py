"""The compiled train and eval steps, built once per run from a task.

Both are pure functions of (state, batch): the NNX objects are split once, outside the
loop, and merged inside the traced function (the Flax NNX performance guide's
"functional training loop"), so no Python object graph is walked per step. The train
state is donated: XLA updates parameters and optimizer state in place, and keeps the
shardings it was placed with. The train step flags a non-finite update, and under
`on_nan=skip` never commits one (see `commit_if_finite`), whatever the task's own
`train_step` does.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from zoo.task import Task
from zoo_hardware import compilation

State = Any  # an nnx.State of {"model": ..., "optimizer": ...}
FINITE = "finite"  # the train step's flag: the update was finite and applied


@dataclass
class Steps:
    """A run's compiled functions and the graph definitions they close over."""

    train: Callable[[State, dict, jax.Array], tuple[State, dict]]
    evaluate: Callable[[State, dict], dict]
    compile_seconds: float = 0.0
    cached_programs: int = 0  # of the compiled ones, loaded from the persistent cache


def split_train_state(model: nnx.Module, optimizer: nnx.Object) -> tuple[nnx.GraphDef, State]:
    return nnx.split({"model": model, "optimizer": optimizer})


def merge_train_state(graphdef: nnx.GraphDef, state: State) -> tuple[nnx.Module, nnx.Object]:
    nodes = nnx.merge(graphdef, state)
    return nodes["model"], nodes["optimizer"]


def _train_step(state: State, batch: dict, step: jax.Array, *, graphdef: nnx.GraphDef,
                task: Task, seed: int, keep_old: bool) -> tuple[State, dict]:
    """One optimizer update. `state` is donated; the step's rng derives from (seed, step)."""
    before = jax.tree.leaves(state)  # the arrays themselves: the task mutates the merged objects
    model, optimizer = merge_train_state(graphdef, state)
    rng = jax.random.fold_in(jax.random.key(seed), step)
    metrics = task.train_step(model, optimizer, batch, rng)
    after = nnx.state({"model": model, "optimizer": optimizer})
    if jax.config.jax_debug_nans:  # let the NaN reach the outputs, where JAX looks for it
        return after, {**metrics, FINITE: jnp.bool_(True)}
    return commit_if_finite(before, after, metrics, keep_old=keep_old)


def commit_if_finite(before: list[jax.Array], after: State, metrics: dict, *,
                     keep_old: bool = True) -> tuple[State, dict]:
    """Flags whether the updated state and every `*loss*` scalar are finite (`FINITE`),
    and with `keep_old` returns the old state in place of a non-finite update.

    Checking the updated state rather than the gradients works for any task's
    `train_step` (a GAN computes its own): a NaN or Inf gradient always reaches the
    parameters or the optimizer's moments. The optimizer's step count is state too, so
    a dropped update does not advance it. Keeping the old state costs far more than the
    flag: the select waits for the whole update, which serialises XLA's CPU threads
    (LeNet: +31% wall time per step on 2 cores, benchmarks/README.md). So only `on_nan=skip`,
    which trains on after a bad step, pays for it; `raise` stops at the flagged step
    before the next checkpoint, so the bad state is never saved.
    """
    if FINITE in metrics:
        raise ValueError(f"train_step returned {FINITE!r}, a name the harness reserves")
    leaves, treedef = jax.tree.flatten(after)
    checked = [x for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    checked += [v for k, v in metrics.items() if "loss" in k]
    finite = jnp.all(jnp.stack([jnp.isfinite(x).all() for x in checked]))
    if keep_old:
        leaves = [jnp.where(finite, new, old) for new, old in zip(leaves, before, strict=True)]
    return jax.tree.unflatten(treedef, leaves), {**metrics, FINITE: finite}


def _eval_step(state: State, batch: dict, *, graphdef: nnx.GraphDef, task: Task) -> dict:
    model = nnx.merge(graphdef, state["model"])
    return task.eval_step(model, batch)


def inference_view(model: nnx.Module) -> nnx.Module:
    """`model` in evaluation mode: dropout off, batch norm on its running statistics."""
    return nnx.view(model, deterministic=True, use_running_average=True,
                    raise_if_not_found=False)


def build_steps(task: Task, model: nnx.Module, optimizer: nnx.Object, *, seed: int,
                state_sharding: Any = None, scalar_sharding: Any = None) -> Steps:
    """Jits the task's train and eval steps for this model's graph structure.

    Args:
      state_sharding: a tree of shardings for the train state the step returns (by
        default XLA chooses); the step's scalars come back with `scalar_sharding`.
    """
    graphdef, _ = split_train_state(model, optimizer)
    out = None if state_sharding is None else (state_sharding, scalar_sharding)
    keep_old = task.config.train.on_nan == "skip"
    train = jax.jit(functools.partial(_train_step, graphdef=graphdef, task=task, seed=seed,
                                      keep_old=keep_old),
                    donate_argnums=0, out_shardings=out)
    return Steps(train=train, evaluate=eval_step(task, model))


def eval_step(task: Task, model: nnx.Module) -> Callable[[State, dict], dict]:
    """The task's eval step on a train state of `model`'s structure, jitted (any batch shape)."""
    eval_graphdef, _ = nnx.split(inference_view(model))
    return jax.jit(functools.partial(_eval_step, graphdef=eval_graphdef, task=task))


def compile_steps(steps: Steps, state: State, train_batches: Sequence[dict],
                  eval_batch: dict) -> Steps:
    """Compiles ahead of time, timing compilation apart from stepping: the train step
    for each shape of `train_batches` (one per bucket, `Task.buckets`; none when not
    training), the eval step for `eval_batch`.

    The compiled objects also refuse (rather than silently recompile for) a batch of
    another shape. Under `jax_debug_nans` the train step stays a `jax.jit` function:
    only that path re-runs a failing step op by op to name the operation.
    """
    t0, hits = time.perf_counter(), compilation.cache_hits()
    train = steps.train
    if train_batches and not jax.config.jax_debug_nans:
        programs = {_shapes(b): steps.train.lower(state, b, jnp.int32(0)).compile()
                    for b in train_batches}
        train = next(iter(programs.values())) if len(programs) == 1 else ByShape(programs)
    evaluate = steps.evaluate.lower(state, eval_batch).compile()
    return Steps(train=train, evaluate=evaluate, compile_seconds=time.perf_counter() - t0,
                 cached_programs=compilation.cache_hits() - hits)


def _shapes(batch: dict) -> tuple:
    return tuple((k, v.shape) for k, v in sorted(batch.items()))


@dataclass
class ByShape:
    """Compiled train steps by batch shape (a task's buckets): calls the batch's own."""

    programs: dict[tuple, Callable]

    def __call__(self, state: State, batch: dict, step: jax.Array) -> tuple[State, dict]:
        return self.program(batch)(state, batch, step)

    def program(self, batch: dict) -> Callable:
        """The compiled program for `batch`'s shapes."""
        program = self.programs.get(_shapes(batch))
        if program is None:
            raise ValueError(f"no train step compiled for batch shapes {_shapes(batch)}; "
                             f"compiled: {list(self.programs)}")
        return program
