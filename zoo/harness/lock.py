"""One writer per workdir: an exclusive lock held for the life of a run.

Two runs writing one workdir would delete each other's checkpoints (each manager
cleans up what it did not write). The lock is `flock` on `WORKDIR/run.lock`
(filelock): the kernel drops it when its process dies, however it dies, so a lock left
by a killed run is never stale. The holder writes its pid, host and start time into the
file, which a refused run names; a clean exit empties it again, so a record found on
acquiring belongs to a process that died holding it, and is reported as recovered.
Readers (`zoo eval`, `predict`) take no lock: checkpoints appear by atomic renames.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

import filelock

from zoo.errors import ZooError

LOCK_FILE = "run.lock"


class WorkdirLock:
    """`with WorkdirLock(workdir, log):` holds `workdir`'s lock, creating the workdir.

    A workdir this lock created is removed again on exit if nothing but the lock was
    written into it (a run refused before its first write leaves nothing behind).
    `enabled=False` (the other processes of a multi-process run) only creates it.

    Raises:
      ZooError: another live process holds the lock (naming its pid and host), or the
        workdir cannot be created or locked (a file in the way, no permission).
    """

    def __init__(self, workdir: Path, log=lambda message: None, *, enabled: bool = True):
        self.workdir, self.log, self.enabled = Path(workdir), log, enabled
        self.path = self.workdir / LOCK_FILE
        self._created = False
        self._lock: filelock.BaseFileLock | None = None

    def __enter__(self) -> WorkdirLock:
        self._created = make_workdir(self.workdir)
        if not self.enabled:
            return self
        previous = _holder(self.path)
        self._lock = filelock.FileLock(self.path, timeout=0, thread_local=False)
        try:
            self._lock.acquire()
        except filelock.Timeout:
            self._lock = None
            raise ZooError(f"{self.workdir} is in use by another zoo run "
                           f"({_describe(_holder(self.path))}); wait for it to finish, or use "
                           f"another --workdir") from None
        except OSError as e:
            self._lock = None
            self._remove_if_created()
            raise ZooError(f"cannot lock {self.path}: {e.strerror or e}; "
                           f"use a --workdir on a local, writable file system") from None
        try:
            _write_holder(self.path)
        except OSError:
            pass  # the lock holds without its record: a refused run says "holder unknown"
        if previous and previous.get("pid") != os.getpid():
            self.log(f"recovered the lock of a run that ended without releasing it "
                     f"({_describe(previous)})")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._lock is None:
            self._remove_if_created()
            return
        try:
            self.path.write_bytes(b"")  # released cleanly: no holder to report
        except OSError:
            pass  # the workdir went away or became read-only: the flock still goes
        self._lock.release()
        self._lock = None
        self._remove_if_created()

    def _remove_if_created(self) -> None:
        if not self._created:
            return
        try:
            if {p.name for p in self.workdir.iterdir()} <= {LOCK_FILE}:
                self.path.unlink(missing_ok=True)
                self.workdir.rmdir()
        except OSError:
            pass  # something else appeared there: keep it


def make_workdir(workdir: Path) -> bool:
    """Creates `workdir` (and its parents); returns whether it was created now.

    Raises:
      ZooError: a file is in the way, or the location is not writable.
    """
    if workdir.is_dir():
        return False
    if workdir.exists():
        raise ZooError(f"--workdir {workdir} is a file, not a directory; choose another path")
    try:
        workdir.mkdir(parents=True)
    except OSError as e:
        raise ZooError(f"cannot create --workdir {workdir}: {e.strerror or e}; "
                       f"choose a writable location") from None
    return True


def _write_holder(path: Path) -> None:
    """This process's record, into the lock file it has just locked (flock is advisory:
    a second descriptor may write while the lock's own holds the lock)."""
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path.write_text(json.dumps(record))


def _holder(path: Path) -> dict:
    """The record in a lock file ({} when empty, unreadable or missing)."""
    try:
        record = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe(holder: dict) -> str:
    if not holder:
        return "holder unknown"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}"
