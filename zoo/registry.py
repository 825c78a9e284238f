"""The task registry: decorator, `zoo.tasks` entry points, and `--plugin FILE.py`.

Entry points are read lazily (name and source only) and a task's module is imported only
when that task is asked for, so `import zoo` and `zoo --help` stay fast however many
plugins are installed. Built-in tasks come through the same entry-point group as anyone
else's.

When two sources offer one name, both stay reachable under qualified names
(`distribution:name`); asking for the bare name is then an error naming both. A module
named by its own entry point may also carry `@register_task`: registering the class an
entry point names is a no-op. `plugin_of` says where a task class came from, for
run.json and model cards.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import ZooError, unknown

if TYPE_CHECKING:
    from zoo.task import Task

ENTRY_POINT_GROUP = "zoo.tasks"


@dataclass
class _Entry:
    """One registered task: its source and either its class or how to import it."""

    name: str
    source: str  # "entry point classification = zoo_tasks.classification:..." etc.
    task_cls: type[Task] | None = None
    entry_point: importlib.metadata.EntryPoint | None = None

    def names(self, task_cls: type) -> bool:
        """Whether this entry is `task_cls`, or an entry point naming it."""
        if self.task_cls is not None:
            return self.task_cls is task_cls
        return self.entry_point.value == f"{task_cls.__module__}:{task_cls.__qualname__}"

    def load(self) -> type[Task]:
        if self.task_cls is None:
            try:
                loaded = self.entry_point.load()
            except (Exception, SystemExit) as e:  # a broken plugin must not look like a zoo bug
                raise ZooError(f"task plugin {self.source} failed to import: {failure(e)}") from e
            self.task_cls = _check_task_class(loaded, self.source)
        return self.task_cls


_entries: dict[str, list[_Entry]] = {}
_entry_points_loaded = False
_plugin_files: dict[str, Path] = {}  # module name -> the --plugin file it was imported from


def register_task(name: str | None = None, *, replace: bool = False) -> Callable:
    """Class decorator registering a `Task` subclass under `name` (default: `cls.name`).

    Example:
      @zoo.register_task("mytask")
      class MyTask(zoo.Task): ...

    Raises:
      ZooError: if the name is taken (unless `replace=True`) or the class is not a Task.
    """

    def decorate(cls: type) -> type:
        module = inspect.getmodule(cls)
        source = f"{cls.__qualname__} in {getattr(module, '__file__', None) or cls.__module__}"
        task_cls = _check_task_class(cls, source)
        task_name = name or task_cls.name
        if not task_name:
            raise ZooError(f"task class {source} has no name: set `name = '...'` on the class "
                           f"or pass one to @register_task('...')")
        existing = _all_entries().get(task_name, [])
        same = [e for e in existing if e.names(task_cls)]
        if same:  # the class its own entry point (or an earlier import) registered
            same[0].task_cls = task_cls
            return cls
        if existing and not replace:
            raise ZooError(f"task {task_name!r} from {source} clashes with {existing[0].source}; "
                           f"rename one, or pass replace=True to override")
        _entries[task_name] = [_Entry(task_name, source, task_cls=task_cls)]
        return cls

    return decorate


def load_plugin_file(path: str | Path) -> None:
    """Imports a Python file whose `@register_task` decorators register its tasks."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".py":
        raise ZooError(f"--plugin {path}: no such .py file")
    # A private, path-derived module name: a plugin called tasks.py or zoo.py cannot
    # shadow (or be shadowed by) an installed package.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    module_name = f"zoo_plugin_{path.stem}_{digest}"
    if module_name in sys.modules:  # imported before: restore registrations undone since
        from zoo.task import Task

        for obj in vars(sys.modules[module_name]).values():
            if (isinstance(obj, type) and obj.__module__ == module_name and issubclass(obj, Task)
                    and obj.name and obj.name not in _all_entries()):
                register_task()(obj)
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    _plugin_files[module_name] = path.resolve()
    try:
        spec.loader.exec_module(module)
    except ZooError:
        del sys.modules[module_name]
        raise
    except (Exception, SystemExit) as e:
        del sys.modules[module_name]
        raise ZooError(f"--plugin {path} failed to import: {failure(e)}") from e


@contextlib.contextmanager
def plugin_code(task: Task, method: str) -> Iterator[None]:
    """Runs a task's own method: its failure becomes one line naming the task and method.

    A plugin's bug, or its `sys.exit`, must not look like zoo's (`--debug` shows the
    traceback).
    """
    try:
        yield
    except ZooError:
        raise
    except (Exception, SystemExit) as e:
        raise ZooError(f"task {task.name!r} failed in {method}: {failure(e)} "
                       f"(its code: {_source_of(type(task))}; --debug shows the traceback)") from e


def failure(error: BaseException) -> str:
    """An exception in one line: its type and the first line of its message."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _source_of(task_cls: type) -> str:
    plugin = plugin_of(task_cls)
    return plugin.get("file") or plugin.get("distribution") or plugin["module"]


def get_task(name: str) -> type[Task]:
    """The Task class registered as `name` (or `distribution:name`).

    Raises:
      ZooError: unknown name (with the closest names suggested) or an ambiguous one.
    """
    entries = _all_entries()
    if ":" in name:
        for candidates in entries.values():
            for entry in candidates:
                if entry.name == name.split(":", 1)[1] and _qualified(entry) == name:
                    return entry.load()
    candidates = entries.get(name)
    if not candidates:
        raise unknown("task", name, task_names())
    if len(candidates) > 1:
        sources = "; ".join(f"{_qualified(e)} ({e.source})" for e in candidates)
        raise ZooError(f"task name {name!r} is registered twice: {sources}; "
                       f"ask for one by its qualified name")
    return candidates[0].load()


def task_names() -> list[str]:
    """All registered task names, sorted."""
    return sorted(_all_entries())


def plugin_of(task_cls: type[Task]) -> dict[str, str]:
    """Where a task class comes from: its distribution and version (built-ins: zoo), the
    `--plugin` file it was imported from, or else its module."""
    for entries in _all_entries().values():
        for entry in entries:
            if entry.entry_point is not None and entry.names(task_cls) and entry.entry_point.dist:
                dist = entry.entry_point.dist
                return {"distribution": dist.name, "version": dist.version}
    if task_cls.__module__ in _plugin_files:
        return {"file": str(_plugin_files[task_cls.__module__])}
    return {"module": task_cls.__module__}


@contextlib.contextmanager
def temporary_registry() -> Iterator[None]:
    """Registrations made inside the block are undone at exit (for tests)."""
    saved = {k: list(v) for k, v in _all_entries().items()}
    try:
        yield
    finally:
        _entries.clear()
        _entries.update(saved)


def _all_entries() -> dict[str, list[_Entry]]:
    global _entry_points_loaded
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            entry = _Entry(ep.name, f"entry point {ep.name} = {ep.value} [{dist}]", entry_point=ep)
            existing = _entries.setdefault(ep.name, [])
            if not any(e.entry_point and e.entry_point.value == ep.value for e in existing):
                existing.append(entry)
    return _entries


def _qualified(entry: _Entry) -> str:
    if entry.entry_point is not None and entry.entry_point.dist is not None:
        return f"{entry.entry_point.dist.name}:{entry.name}"
    return entry.name


def _check_task_class(obj: object, source: str) -> type[Task]:
    from zoo.task import Task

    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise ZooError(f"task plugin {source} is {obj!r}, not a zoo.Task subclass")
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if obj.loss is Task.loss and obj.train_step is Task.train_step:
        missing = sorted([*missing, "loss (or train_step)"])
    if missing:
        raise ZooError(f"task plugin {source} does not implement {', '.join(missing)} "
                       f"(see `zoo.Task`)")
    return obj
