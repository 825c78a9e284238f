"""The local copy of hub files under `$ZOO_HOME/hub`: plain files and folders only.

  hub/weights/TASK/MODEL/TAG/SHA/FILE   verified files (an archive's folder beside it)
  hub/weights/.../SHA/.zoo-record.json  what the entry is (card name, sha256, an archive's
                                        files and their sha256); its mtime: the last use
  hub/indexes/KEY.json                  the last good copy of each remote index
  hub/locks/KEY.lock                    one lock per file: concurrent pulls fetch once

SHA is the first 16 hex digits of the card's sha256 (`unverified` without one), so two
hubs publishing different bytes under one name never overwrite each other. A cached
file is hashed again every time it is used, and so is every extracted file of an
archive; a corrupted file is fetched again, a changed extraction redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.hub import archive, fetch, urls
from zoo.hub.card import ARCHIVE_SUFFIXES, Card
from zoo.io.files import sha256_file, write_json
from zoo.paths import zoo_home

LOCK_NOTICE_S = 0.5  # wait this long for a lock before saying who we wait for
RECORD = ".zoo-record.json"  # never a card's file name: those start with a letter or digit


def root() -> Path:
    return zoo_home() / "hub"


def path_of(card: Card) -> Path:
    """Where the card's file lives once fetched."""
    return (root() / "weights" / card.task / card.model / card.tag /
            (card.sha256[:16] if card.sha256 else "unverified") / card.file)


def index_copy(index_url: str) -> Path:
    """Where the last good copy of a remote index is kept, for offline use."""
    return root() / "indexes" / f"{_key(index_url)}.json"


def is_cached(card: Card) -> bool:
    return path_of(card).is_file()


def record_of(folder: Path) -> dict[str, Any] | None:
    """The record of the entry in `folder` (None if absent or unreadable)."""
    try:
        data = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def fetch_card(card: Card, index_url: str, *, allow_unverified: bool = False) -> Path:
    """The card's verified local file (an archive: its extracted folder), fetched if needed.

    Raises:
      ZooError: an unverified card without `allow_unverified`, a file that is neither
        cached nor fetchable (offline, or every mirror failed), a refused archive.
    """
    if card.sha256 is None and not allow_unverified:
        raise ZooError(f"{card.name} has no sha256 in its card, so its download cannot be "
                       f"verified; pass --allow-unverified to use it anyway")
    path = path_of(card)
    label = f"{card.name} ({card.file})"
    addresses = [urls.resolve(u, index_url) for u in card.urls]
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path, label):
        if path.is_file() and not _intact(path, card):
            print(f"zoo: cached {label} is corrupted (sha256 mismatch); fetching it again",
                  file=sys.stderr)
            _forget(path, card)
        if not path.is_file():
            if urls.offline() and all(urls.is_remote(a) for a in addresses):
                raise ZooError(f"{label} is not in the cache ({path}) and "
                               f"{urls.offline_variable()} forbids downloading it; run `zoo "
                               f"pull {card.name}` once with network access, or unset it")
            fetch.download(addresses, fetch.Target(path, card.size, card.sha256, label))
        contents = _extracted(path, card, label) if card.is_archive else None
        _write_record(path, card, contents)
        return _folder(path) if card.is_archive else path


def _intact(path: Path, card: Card) -> bool:
    if card.sha256 is not None:
        return sha256_file(path) == card.sha256
    return card.size is None or path.stat().st_size == card.size


def _folder(path: Path) -> Path:
    """The folder an archive extracts to: its name without the archive suffix."""
    suffix = next(s for s in ARCHIVE_SUFFIXES if path.name.endswith(s))
    return path.with_name(path.name.removesuffix(suffix))


def _extracted(path: Path, card: Card, label: str) -> dict[str, str]:
    """Extracts a verified archive (into a temporary folder, then renamed), unless its
    folder still holds exactly the files recorded; returns their sha256 by path.

    Raises:
      ZooError: an archive refused by `archive.extract`; the archive is then removed
        from the cache, so nothing of it stays usable.
    """
    folder = _folder(path)
    recorded = (record_of(path.parent) or {}).get("contents")
    if folder.is_dir():
        if isinstance(recorded, dict) and archive.intact(folder, recorded):
            return recorded
        print(f"zoo: the extracted files of cached {label} were changed (or never "
              f"recorded); extracting it again", file=sys.stderr)
        shutil.rmtree(folder)
    tmp = folder.with_name(folder.name + ".extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        contents = archive.extract(path, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _forget(path, card)
        raise
    tmp.rename(folder)
    return contents


def _write_record(path: Path, card: Card, contents: dict[str, str] | None) -> None:
    """Records what the entry is; its modification time says when it was last used."""
    record = {"name": card.name, "file": card.file, "sha256": card.sha256,
              "size": path.stat().st_size}
    if contents is not None:
        record["contents"] = contents
    if record_of(path.parent) != record:
        write_json(path.parent / RECORD, record)
    else:
        os.utime(path.parent / RECORD, (time.time(), time.time()))


def discard(card: Card) -> None:
    """Removes a card's cached file, e.g. when its verified bytes hold refused weights."""
    path = path_of(card)
    with locked(path, f"{card.name} ({card.file})"):
        _forget(path, card)


def _forget(path: Path, card: Card) -> None:
    """Removes a cached file, its extracted folder and its record."""
    path.unlink(missing_ok=True)
    (path.parent / RECORD).unlink(missing_ok=True)
    if card.is_archive:
        shutil.rmtree(_folder(path), ignore_errors=True)


@contextlib.contextmanager
def locked(path: Path, label: str) -> Iterator[None]:
    """Holds the file's lock; says so when another process holds it first."""
    import filelock

    lock_dir = root() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(lock_dir / f"{_key(str(path))}.lock")
    try:
        lock.acquire(timeout=LOCK_NOTICE_S)
    except filelock.Timeout:
        print(f"zoo: waiting for another process fetching {label}", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
