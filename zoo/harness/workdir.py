"""The run record `run.json` in a workdir: which task, config and data made it.

A resumed run may change only settings that leave its past as it was (`RESUMABLE_CHANGES`:
when to log, save or stop, the learning rate and clipping from now on, more epochs);
each such change is appended to the record's `settings` history with the step it took
effect. Anything else (model, data, batch size, seed, dtype...) is refused, and so is
data whose identity (`zoo.data.identity`) differs from the recorded one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from zoo.config import TaskConfig, to_dict
from zoo.data.identity import differences, identity
from zoo.errors import ZooError
from zoo.io.files import write_json
from zoo.registry import plugin_of
from zoo.task import Dataset, Task

RUN_FORMAT = 2  # bump when checkpoint layout or run.json changes incompatibly (2: manifests)
CHECKPOINT = "checkpoint"  # run.json's weights format of a trained run: checkpoints/best
# Settings a resumed run may change: they decide when to log, save or stop, or how the
# steps still to come update the weights, never what the steps already taken did.
RESUMABLE_CHANGES = ("train.log_every", "train.checkpoint_every_steps", "train.on_nan",
                     "train.max_bad_steps", "train.epochs", "optimizer.lr",
                     "optimizer.grad_clip_norm", "early_stopping.metric",
                     "early_stopping.patience", "early_stopping.min_delta",
                     "train.workers", "train.on_bad_example")


def read_run(workdir: Path) -> dict[str, Any] | None:
    """The run record, or None for a fresh workdir."""
    path = Path(workdir) / "run.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ZooError(f"{path}: not valid JSON; the workdir is damaged, use a new --workdir") from None
    except OSError as e:
        raise ZooError(f"cannot read {path} ({e.strerror or e}); check the --workdir") from None
    if not isinstance(record, dict) or not isinstance(record.get("task"), str):
        raise ZooError(f"{path}: not a zoo run record; use a new --workdir")
    found = record.get("format", 0)
    if not isinstance(found, int) or isinstance(found, bool):
        raise ZooError(f"{path}: its format {found!r} is not a number; the workdir is "
                       f"damaged, use a new --workdir")
    if found != RUN_FORMAT:
        age = "a newer" if found > RUN_FORMAT else "an older"
        fix = "upgrade zoo" if found > RUN_FORMAT else "retrain"
        raise ZooError(f"{workdir} was written by {age} zoo (run format {found}, this zoo "
                       f"reads {RUN_FORMAT}); {fix} or use a new --workdir")
    for key in ("config", "info", "data"):
        if not isinstance(record.setdefault(key, {}), dict):
            raise ZooError(f"{path}: its {key!r} is not an object; the workdir is damaged, "
                           f"use a new --workdir")
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
                    config: TaskConfig) -> dict[str, list]:
    """A workdir can be resumed by a run of the same task with a compatible config.

    Returns:
      The resumable settings that change, {dotted key: [old, new]}.
    """
    check_task(workdir, record, task_name)
    old, new = record["config"], to_dict(config)
    changed = config_differences(old, new)
    refused = [key for key in changed if key not in RESUMABLE_CHANGES]
    if refused:
        raise ZooError(f"{workdir} holds a run with a different config "
                       f"({', '.join(refused)}); repeat its options to resume, "
                       f"or use a new --workdir")
    return {key: [_lookup(old, key), _lookup(new, key)] for key in changed}


def check_data(workdir: Path, record: dict[str, Any], data: Dataset, spec: str) -> dict[str, Any]:
    """The identity of `data`, checked against the one `record` holds (if any).

    Raises:
      ZooError: naming what changed (classes, split sizes, files) since the run began.
    """
    current = identity(data, spec)
    if record is not None:
        changes = differences(record["data"], record["info"], current, data.info)
        if changes:
            raise ZooError(f"{workdir} was trained on other data: {'; '.join(changes)} since "
                           f"it began; restore the data, or use a new --workdir")
    return current


def check_checkpoints_left(workdir: Path) -> None:
    """Refuses a workdir whose run trained epochs (its history says so) but whose
    checkpoints are gone: starting afresh would silently rewrite its record."""
    saved = any(p.name.isdigit() for p in (workdir / "checkpoints").glob("*/*"))
    if (workdir / "history.jsonl").exists() and not saved:
        raise ZooError(f"{workdir} holds the history of a run but no checkpoint to resume it "
                       f"from; restore its checkpoints/ folder, or use a new --workdir")


def apply_changes(loop: Any, task: Task, changes: Mapping[str, list],
                  log: Callable[[str], None]) -> None:
    """Applies settings changed on resume to the loop state (`trainer.LoopState`; see
    docs/reliability.md).

    More epochs reopen a run that ended by reaching its epochs (not one that early
    stopping ended, unless its patience is raised too); another early-stopping metric
    starts its best value afresh, so the next epoch becomes the best checkpoint.
    """
    if not changes:
        return
    es, epochs = task.config.early_stopping, task.config.train.epochs
    old_metric = changes.get("early_stopping.metric", [es.metric])[0]
    if (old_metric or task.metric) != (es.metric or task.metric):
        loop.best_value, loop.bad_epochs = None, 0
    stopped_early = bool(es.patience) and loop.bad_epochs >= es.patience
    was_finished = loop.finished
    loop.finished = loop.epoch >= epochs or stopped_early
    if loop.epoch > epochs:
        log(f"note: this run already trained {loop.epoch} epochs, more than "
            f"--epochs {epochs}; nothing more to train")
    elif was_finished and not loop.finished:
        log(f"continuing a finished run from epoch {loop.epoch} to {epochs}")
    elif was_finished and stopped_early and loop.epoch < epochs:
        log(f"early stopping ended this run at epoch {loop.epoch}; raise "
            f"early_stopping.patience (now {es.patience}) to train on")
    log("changed on resume at step {}: {}".format(loop.step, ", ".join(
        f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())))


def write_run(workdir: Path, task: Task, info: dict[str, Any],
              data: dict[str, Any] | None = None, *, previous: dict[str, Any] | None = None,
              step: int = 0, changes: dict[str, list] | None = None) -> None:
    """Writes run.json: the task, its config and plugin, the data set's facts and
    identity, versions, and the history of settings changed on resume.

    Args:
      previous: the record of the run being resumed: its creation time and history stay.
      step: the step from which `changes` take effect.
    """
    settings = list((previous or {}).get("settings", []))
    if changes:
        settings.append({"step": step, "changed": changes,
                         "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    record = {
        "format": RUN_FORMAT,
        "task": task.name,
        "config": to_dict(task.config),
        "plugin": plugin_of(type(task)),  # which distribution (or --plugin file) ran it
        "info": info,
        "data": data or {},  # split sizes and content fingerprint, compared on resume
        "weights": {"format": CHECKPOINT},  # how `zoo.restore` reads the model back
        "created": (previous or {}).get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "versions": {p: _version(p) for p in ("zoo", "jax", "flax", "optax", "orbax-checkpoint")},
    }
    if "reading" in (previous or {}):  # how the last session that trained read the data
        record["reading"] = previous["reading"]
    write_json(Path(workdir) / "run.json", record)


def record_reading(workdir: Path, facts: dict[str, Any]) -> None:
    """Sets run.json's "reading" section: how this training session read the data
    (workers, peak memory of the process tree, examples left out). Apart from "data",
    the data set's identity compared on resume: these facts change from session to
    session."""
    path = Path(workdir) / "run.json"
    record = json.loads(path.read_text())
    record["reading"] = facts
    write_json(path, record)


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


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
