"""`zoo profile`: what a task's compiled steps cost, and how fast each chip could run them.

The steps are the very programs `zoo run` trains with, compiled for one device (so the
counts cover the whole global batch): XLA's cost analysis gives their FLOPs and bytes,
its memory analysis their buffers, and the roofline of each catalogue chip the least
time it could take. Timing them here, against this machine's measured peak, says how
far from its roofline the step runs.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np
from flax import nnx

from zoo.data import loader
from zoo.harness.steps import ByShape
from zoo.harness.trainer import Session, open_session
from zoo.task import Task
from zoo_hardware import catalogue, placement, roofline


def profile_task(task: Task, *, hardware: str | None = None, device: str = "auto",
                 steps: int = 10) -> dict[str, Any]:
    """The cost, memory and roofline report of `task`'s train and eval steps (JSON-able).

    Args:
      hardware: comma-separated catalogue names (default: every chip in the catalogue).
      steps: steps per timing window (the best of three windows counts).
    """
    cfg = task.config
    specs = catalogue.lookup(hardware)
    session = open_session(task, device=device, mesh="data=1")
    dtype = cfg.train.dtype
    local = catalogue.measure_local(dtype)
    model_state = session.state["model"]
    params = model_state.filter(nnx.Param)
    report: dict[str, Any] = {
        "task": task.name, "model": cfg.model, "data": cfg.data, "dtype": dtype,
        "device": _device_name(session.mesh.devices.flat[0]),
        "compile_seconds": round(session.steps.compile_seconds, 2),
        "cached_programs": session.steps.cached_programs,
        "parameters": int(sum(x.size for x in jax.tree.leaves(params))),
        "memory_bytes": {"parameters": _nbytes(params), "model_state": _nbytes(model_state),
                         "optimizer_state": _nbytes(session.state["optimizer"])},
        "hardware": {spec.name: _spec_row(spec, dtype) for spec in [*specs, local]},
        "steps": {},
    }
    batch = placement.put_batch(next(session.inputs.train(cfg.train.batch_size, epoch=0)),
                                session.mesh)
    train = session.steps.train  # a task with buckets: the program of the first batch's
    train = train.program(batch) if isinstance(train, ByShape) else train
    timings = {"eval": (_time_eval(session, steps), cfg.train.eval_batch_size),
               "train": (_time_train(session, batch, steps), cfg.train.batch_size)}  # donates
    for name, compiled in (("train", train), ("eval", session.steps.evaluate)):
        seconds, batch = timings[name]
        cost = roofline.step_cost(compiled)
        achieved = cost.flops / seconds
        report["steps"][name] = {
            "batch_size": batch, "flops": cost.flops, "flops_per_example": cost.flops / batch,
            "bytes": cost.bytes_accessed, "bytes_per_example": cost.bytes_accessed / batch,
            "transcendentals": cost.transcendentals, "intensity": cost.intensity,
            "memory_bytes": roofline.step_memory(compiled),
            "measured_seconds": seconds, "achieved_flops": achieved,
            "fraction_of_local_peak": achieved / local.peak(dtype),
            "roofline": {spec.name: _bound_row(roofline.bound(cost, spec, dtype), seconds
                                               if spec is local else None)
                         for spec in [*specs, local]},
        }
    return report


def _time_train(session: Session, batch: dict, steps: int) -> float:
    """Seconds per train step on `batch`: the best of three windows of `steps`, after a
    warm-up. The steps donate and so use up `session.state`.
    """
    state = session.state

    def window(n: int) -> float:
        nonlocal state
        t0 = time.perf_counter()
        for i in range(n):
            state, out = session.steps.train(state, batch, np.int32(i))
        jax.block_until_ready((state, out))
        return (time.perf_counter() - t0) / n

    window(2)
    return min(window(steps) for _ in range(3))


def _time_eval(session: Session, steps: int) -> float:
    """Seconds per eval step, timed as `_time_train`."""
    batch = placement.put_batch(next(loader.eval_batches(
        session.data.splits["val"], session.task.config.train.eval_batch_size)), session.mesh)

    def window(n: int) -> float:
        t0 = time.perf_counter()
        jax.block_until_ready([session.steps.evaluate(session.state, batch) for _ in range(n)])
        return (time.perf_counter() - t0) / n

    window(2)
    return min(window(steps) for _ in range(3))


def _spec_row(spec: catalogue.DeviceSpec, dtype: str) -> dict[str, Any]:
    peak = spec.peak(dtype)
    return {"description": spec.description, "peak_flops": peak, "bandwidth": spec.bandwidth,
            "memory": spec.memory, "ridge_intensity": peak / spec.bandwidth if peak else None}


def _bound_row(bound: roofline.Bound | None, measured: float | None) -> dict[str, Any] | None:
    if bound is None:
        return None
    row = {"seconds": bound.seconds, "compute_seconds": bound.compute_seconds,
           "memory_seconds": bound.memory_seconds, "limit": bound.limit}
    if measured is not None:
        row["fraction_of_roofline"] = bound.seconds / measured
    return row


def _device_name(device: jax.Device) -> str:
    kind = device.device_kind
    return device.platform if kind == device.platform else f"{device.platform} ({kind})"


def _nbytes(tree: Any) -> int:
    return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))
