"""The local copy of hub files under `$ZOO_HOME/hub`: plain files and folders only.

  hub/weights/TASK/MODEL/TAG/SHA/FILE   verified files (an archive's folder beside it)
  hub/indexes/KEY.json                  the last good copy of each remote index
  hub/locks/KEY.lock                    one lock per file: concurrent pulls fetch once

SHA is the first 16 hex digits of the card's sha256 (`unverified` without one), so two
hubs publishing different bytes under one name never overwrite each other. A cached
file is hashed again every time it is used; a corrupted one is fetched again.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import ZooError
from zoo.hub import archive, fetch, urls
from zoo.hub.card import ARCHIVE_SUFFIXES, Card
from zoo.io.files import sha256_file
from zoo.paths import zoo_home

LOCK_NOTICE_S = 0.5  # wait this long for a lock before saying who we wait for


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
    with _locked(path, label):
        if path.is_file() and not _intact(path, card):
            print(f"zoo: cached {label} is corrupted (sha256 mismatch); fetching it again",
                  file=sys.stderr)
            path.unlink()
            if card.is_archive:
                shutil.rmtree(_folder(path), ignore_errors=True)
        if not path.is_file():
            if urls.offline() and all(urls.is_remote(a) for a in addresses):
                raise ZooError(f"{label} is not in the cache ({path}) and ZOO_OFFLINE=1 "
                               f"forbids downloading it; run `zoo pull {card.name}` once "
                               f"with network access, or unset ZOO_OFFLINE")
            fetch.download(addresses, fetch.Target(path, card.size, card.sha256, label))
        return _extracted(path) if card.is_archive else path


def _intact(path: Path, card: Card) -> bool:
    if card.sha256 is not None:
        return sha256_file(path) == card.sha256
    return card.size is None or path.stat().st_size == card.size


def _folder(path: Path) -> Path:
    """The folder an archive extracts to: its name without the archive suffix."""
    suffix = next(s for s in ARCHIVE_SUFFIXES if path.name.endswith(s))
    return path.with_name(path.name.removesuffix(suffix))


def _extracted(path: Path) -> Path:
    """Extracts a verified archive once (into a temporary folder, then renamed)."""
    folder = _folder(path)
    if not folder.is_dir():
        tmp = folder.with_name(folder.name + ".extracting")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            archive.extract(path, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        tmp.rename(folder)
    return folder


@contextlib.contextmanager
def _locked(path: Path, label: str) -> Iterator[None]:
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
