"""The run record `run.json` in a workdir: which task, config and data made it."""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from zoo.config import TaskConfig, to_dict
from zoo.errors import ZooError
from zoo.harness.reports import write_json

RUN_FORMAT = 1  # bump when checkpoint layout or run.json changes incompatibly


def read_run(workdir: Path) -> dict[str, Any] | None:
    """The run record, or None for a fresh workdir."""
    path = Path(workdir) / "run.json"
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ZooError(f"{path}: not valid JSON; the workdir is damaged, use a new --workdir") from None
    if record.get("format", 0) > RUN_FORMAT:
        raise ZooError(f"{workdir} was written by a newer zoo (format {record.get('format')}); "
                       f"upgrade zoo or use a new --workdir")
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


def write_run(workdir: Path, task_name: str, config: TaskConfig, info: dict[str, Any]) -> None:
    record = {
        "format": RUN_FORMAT,
        "task": task_name,
        "config": to_dict(config),
        "info": info,
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
