"""The run record `run.json` in a workdir: which task, config and data made it."""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from zoo.config import TaskConfig, to_dict
from zoo.errors import ZooError
from zoo.io.files import write_json
from zoo.registry import plugin_of
from zoo.task import Task

RUN_FORMAT = 2  # bump when checkpoint layout or run.json changes incompatibly (2: manifests)
CHECKPOINT = "checkpoint"  # run.json's weights format of a trained run: checkpoints/best
# Settings a resumed run may change: they decide when to log, save or stop, not the result.
RESUMABLE_CHANGES = ("train.log_every", "train.checkpoint_every_steps", "train.on_nan",
                     "train.max_bad_steps")


def read_run(workdir: Path) -> dict[str, Any] | None:
    """The run record, or None for a fresh workdir."""
    path = Path(workdir) / "run.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ZooError(f"{path}: not valid JSON; the workdir is damaged, use a new --workdir") from None
    if not isinstance(record, dict) or "task" not in record:
        raise ZooError(f"{path}: not a zoo run record; use a new --workdir")
    found = record.get("format", 0)
    if found != RUN_FORMAT:
        age = "a newer" if found > RUN_FORMAT else "an older"
        fix = "upgrade zoo" if found > RUN_FORMAT else "retrain"
        raise ZooError(f"{workdir} was written by {age} zoo (run format {found}, this zoo "
                       f"reads {RUN_FORMAT}); {fix} or use a new --workdir")
    return record


def require_run(workdir: Path, task_name: str | None = None) -> dict[str, Any]:
    """The run record of a trained workdir, checked to belong to `task_name`."""
    record = read_run(workdir)
    if record is None:
        raise ZooError(f"{workdir}: no zoo run here (no run.json); train one with "
                       f"`zoo run {task_name or 'TASK'} --workdir {workdir}`")
    check_task(workdir, record, task_name)
    return record


def check_task(workdir: Path, record: dict[str, Any], task_name: str | None) -> None:
    if task_name is not None and record["task"] != task_name:
        raise ZooError(f"{workdir} holds a {record['task']!r} run, not {task_name!r}; "
                       f"use another --workdir")


def check_resumable(workdir: Path, record: dict[str, Any], task_name: str,
                    config: TaskConfig) -> None:
    """A workdir can be resumed by a run of the same task with the same config."""
    check_task(workdir, record, task_name)
    changed = [key for key in config_differences(record["config"], to_dict(config))
               if key not in RESUMABLE_CHANGES]
    if changed:
        raise ZooError(f"{workdir} holds a run with a different config "
                       f"({', '.join(changed)}); repeat its options to resume, "
                       f"or use a new --workdir")


def write_run(workdir: Path, task: Task, info: dict[str, Any]) -> None:
    """Writes run.json: the task, its config and plugin, the data-set facts, versions."""
    record = {
        "format": RUN_FORMAT,
        "task": task.name,
        "config": to_dict(task.config),
        "plugin": plugin_of(type(task)),  # which distribution (or --plugin file) ran it
        "info": info,
        "weights": {"format": CHECKPOINT},  # how `zoo.restore` reads the model back
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {p: _version(p) for p in ("zoo", "jax", "flax", "optax", "orbax-checkpoint")},
    }
    write_json(Path(workdir) / "run.json", record)


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two `to_dict` configs."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_differences(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, list) and tuple(a) == b):
            keys.append(prefix + key)
    return keys


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
