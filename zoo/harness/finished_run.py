"""A finished run made from weights trained elsewhere (`zoo import`).

The workdir holds what `zoo.harness.trainer.fit` leaves behind (run.json, `best` and
`latest` checkpoints of model and optimizer, metrics.json without metrics), so
`zoo predict --workdir`, `zoo eval` and `zoo publish` take it as any trained run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx

from zoo.errors import ZooError
from zoo.harness.checkpoints import BEST, LATEST, CheckpointStore
from zoo.harness.model_setup import ModelSetup
from zoo.harness.optim import make_run_optimizer
from zoo.harness.steps import split_train_state
from zoo.harness.trainer import LoopState
from zoo.harness.workdir import read_run, write_run
from zoo.io.files import write_json
from zoo.task import Task


def write_finished_run(workdir: Path, task: Task, info: Mapping[str, Any],
                       tensors: Mapping[str, np.ndarray], facts: Mapping[str, Any]) -> Path:
    """`workdir` as a run of `task` that finished with these weights (every variable of
    the model, strictly); `facts` go into metrics.json (data set, source).

    Raises:
      ZooError: `workdir` already holds a run, or the weights do not fit the model.
    """
    workdir = Path(workdir)
    if read_run(workdir) is not None:
        raise ZooError(f"{workdir} already holds a run; choose a new --workdir")
    model, _ = ModelSetup(weights=tensors).build(task, info, nnx.Rngs(0))
    optimizer = task.make_optimizer(model, make_run_optimizer(task.config, 1, 1))
    state = nnx.to_pure_dict(split_train_state(model, optimizer)[1])
    meta = dataclasses.asdict(LoopState(finished=True, best_epoch=0))
    workdir.mkdir(parents=True, exist_ok=True)
    write_run(workdir, task, dict(info))
    store = CheckpointStore(workdir)
    try:
        for which in (BEST, LATEST):
            store.save(which, 0, state, meta)
            store.wait()
    finally:
        store.close()
    write_json(workdir / "metrics.json", {"task": task.name, "model": task.config.model,
                                          "metrics": {}, "epochs": 0, "best_epoch": 0, **facts})
    return workdir
