"""`zoo publish`: a finished run's best weights and model card, into a folder hub.

Works for any task: the card is built from what every run leaves in its workdir
(`run.json`: task, config, data-set facts, versions; `metrics.json`: test metrics;
`checkpoints/best`, read through `zoo.restore`). The folder can then be served as it is
by any static host.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from zoo.errors import ZooError
from zoo.hub import index
from zoo.hub.card import Card, check_name
from zoo.io import weights
from zoo.io.files import sha256_file


def publish(run, hub_dir: Path, tag: str, *, mirrors: Sequence[str] = (),
            license: str = "unspecified", source: str = "", force: bool = False) -> Card:
    """Writes `hub_dir/TASK/MODEL-TAG.safetensors` and its card in `hub_dir/index.json`.

    Args:
      run: a finished run's model, as `zoo.restore.from_workdir` restores it.
      mirrors: base addresses serving a copy of `hub_dir`; the card lists the file
        there too, after the hub's own copy.

    Raises:
      ZooError: the run has not finished, a bad tag, or the name taken (without `force`).
    """
    hub_dir = Path(hub_dir)
    check_name("tag", tag)
    if run.workdir is None:
        raise ZooError(f"{run.source} is not a run's workdir; publish the run it came from")
    result_path = run.workdir / "metrics.json"
    if not result_path.is_file():
        raise ZooError(f"{run.workdir}: no metrics.json, so the run has not finished; "
                       f"let `zoo run` complete (it tests the best checkpoint last)")
    result = json.loads(result_path.read_text())
    task, model = run.task, run.model()
    cfg = task.config
    file = f"{check_name('model', cfg.model)}-{tag}.safetensors"
    relative = f"{task.name}/{file}"
    dest = hub_dir / relative
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    weights.save(tmp, weights.arrays(nnx.state(model)), {"zoo.card": f"{task.name}/{file}"})
    card = Card(
        task=task.name, model=cfg.model, tag=tag, file=file,
        urls=(relative, *(f"{m.rstrip('/')}/{relative}" for m in mirrors)),
        size=tmp.stat().st_size, sha256=sha256_file(tmp),
        metrics=_card_metrics(result),
        config=run.record["config"], info=run.record["info"],
        params=sum(int(np.size(x)) for x in jax.tree.leaves(nnx.state(model, nnx.Param))),
        versions=run.record.get("versions", {}), plugin=run.record.get("plugin", {}),
        license=license,
        source=source or _how_made(run, result),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    try:
        index.add(hub_dir, card, force=force)
    except ZooError:
        tmp.unlink()
        raise
    os.replace(tmp, dest)
    return card


def _card_metrics(result: dict) -> dict:
    """The test metrics: numbers under "values", per-class lists and tables under "tables"."""
    values = {k: v for k, v in result["metrics"].items() if np.isscalar(v)}
    tables = {k: v for k, v in result["metrics"].items() if not np.isscalar(v)}
    return {"dataset": result["dataset"], "split": result["split"], "values": values,
            **({"tables": tables} if tables else {})}


def _how_made(run, result: dict) -> str:
    """The card's default `source`: the command that trained the run, or compressed it
    (a compressed workdir's metrics.json has no epochs: `zoo compress` trains none)."""
    cfg = run.task.config
    compressed = run.record.get("compressed")
    if compressed:
        plan = ", ".join(f"{k} {v}" for k, v in compressed["plan"].items() if v is not None)
        return f"zoo compress {run.task.name} of {compressed['source']} ({plan})"
    return (f"zoo run {run.task.name} --model {cfg.model} --data {cfg.data} "
            f"(seed {cfg.train.seed}): best of {result['epochs']} epochs at "
            f"epoch {result['best_epoch']}")
