"""What the hub cache holds, and pruning it: `zoo hub cache` (like huggingface_hub's
`scan-cache` and `delete-cache`).

An entry is one folder `hub/weights/TASK/MODEL/TAG/SHA/`: the file a card pinned, an
archive's extracted folder, a partial download, and the record `cache.py` keeps (its
modification time: the entry's last use). Pruning removes whole entries, each under the
lock a pull of it takes, so a concurrent pull never sees half an entry.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.hub import archive, cache
from zoo.hub.card import Card
from zoo.io.files import sha256_file


@dataclass(frozen=True)
class Entry:
    """One cached weight, as found on disk."""

    folder: Path  # hub/weights/TASK/MODEL/TAG/SHA
    name: str  # TASK/MODEL:TAG
    file: str | None  # the cached file's name; None: only a partial download
    sha256: str | None  # from the record (None: recorded by an older zoo, or unverified)
    size: int  # bytes on disk: the file, its extracted folder, any partial download
    last_used: float  # seconds since the epoch

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "sha256": self.sha256, "size": self.size,
                "last_used": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.last_used)),
                "path": str(self.folder)}


def scan() -> list[Entry]:
    """Every entry of the cache, oldest use first."""
    weights = cache.root() / "weights"
    folders = [p for p in weights.glob("*/*/*/*") if p.is_dir()] if weights.is_dir() else []
    return sorted((_entry(folder) for folder in folders), key=lambda e: e.last_used)


def _entry(folder: Path) -> Entry:
    task, model, tag = folder.relative_to(cache.root() / "weights").parts[:3]
    files = [p for p in folder.rglob("*") if p.is_file()]
    record_path = folder / cache.RECORD
    record = cache.record_of(folder) or {}
    file = next((p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                 and not p.name.endswith(".part")), None)
    used = record_path.stat().st_mtime if record_path.is_file() else max(
        (p.stat().st_mtime for p in files), default=folder.stat().st_mtime)
    sha = record.get("sha256") if isinstance(record.get("sha256"), str) else None
    return Entry(folder, f"{task}/{model}:{tag}", file, sha,
                 sum(p.stat().st_size for p in files), used)


def problem(entry: Entry) -> str | None:
    """Why the entry is unusable (re-hashing its files), or None when it is intact."""
    if entry.file is None:
        return "partial download"
    path = entry.folder / entry.file
    digest = sha256_file(path)
    expected = entry.sha256 or (None if entry.folder.name == "unverified" else entry.folder.name)
    if expected is not None and not digest.startswith(expected):
        return "sha256 mismatch"
    contents = (cache.record_of(entry.folder) or {}).get("contents")
    extracted = [p for p in entry.folder.iterdir() if p.is_dir()]
    if extracted and not (isinstance(contents, dict) and len(extracted) == 1
                          and archive.intact(extracted[0], contents)):
        return "extracted files changed"
    return None


def referenced_folders(cards: Iterable[Card]) -> set[Path]:
    """The entry folders the given cards (the current hubs') would use."""
    return {cache.path_of(card).parent for card in cards}


def prunable(entries: Iterable[Entry], *, referenced: set[Path] | None = None,
             older_than_s: float | None = None, corrupt: bool = False
             ) -> list[tuple[Entry, str]]:
    """The entries matching any criterion given, each with the reason."""
    now, found = time.time(), []
    for entry in entries:
        reasons = []
        if referenced is not None and entry.folder not in referenced:
            reasons.append("not in any current hub")
        if older_than_s is not None and now - entry.last_used > older_than_s:
            reasons.append(f"unused for {(now - entry.last_used) / 86400:.0f} days")
        if corrupt and (why := problem(entry)) is not None:
            reasons.append(why)
        if reasons:
            found.append((entry, ", ".join(reasons)))
    return found


def delete(entry: Entry) -> None:
    """Removes an entry (under its lock) and any folders it leaves empty."""
    parts = [p.name.removesuffix(".part") for p in entry.folder.glob("*.part")]
    with cache.locked(entry.folder / (entry.file or next(iter(parts), "")), entry.name):
        shutil.rmtree(entry.folder, ignore_errors=True)
    weights = cache.root() / "weights"
    for parent in entry.folder.parents:
        if parent == weights or any(parent.iterdir()):
            break
        parent.rmdir()
