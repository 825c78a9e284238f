"""sha256 manifests of checkpoint directories.

Orbax keeps no content checksum: a checkpoint with one flipped byte restores silently
with wrong values. zoo writes `zoo-manifest.json` (size and sha256 of every file) into
each checkpoint while it is still orbax's temporary directory, so the manifest is
renamed into place together with the data, and checks it before every restore.
"""

from __future__ import annotations

import json
from pathlib import Path

from zoo.io.files import sha256_file, write_json

MANIFEST = "zoo-manifest.json"
# Orbax's rename step rewrites these after the manifest is written: bookkeeping (commit
# time, a success marker), not data. Everything under the item directories is covered.
UNLISTED = (MANIFEST, "_CHECKPOINT_METADATA", "commit_success.txt")


class DamagedCheckpoint(Exception):
    """A checkpoint directory whose files do not match its manifest."""

    def __init__(self, directory: Path, file: str, problem: str):
        super().__init__(f"{Path(directory) / file}: {problem}")
        self.directory, self.file, self.problem = Path(directory), file, problem


def _files(directory: Path) -> dict[str, Path]:
    files = {p.relative_to(directory).as_posix(): p for p in sorted(directory.rglob("*"))
             if p.is_file()}
    return {name: path for name, path in files.items() if name not in UNLISTED}


def write_manifest(directory: Path) -> None:
    """Records the size and sha256 of every file under `directory`."""
    files = {name: {"size": path.stat().st_size, "sha256": sha256_file(path)}
             for name, path in _files(directory).items()}
    write_json(directory / MANIFEST, {"format": 1, "files": files})


def verify(directory: Path) -> None:
    """Checks `directory` against its manifest.

    Raises:
      DamagedCheckpoint: naming the first file that is missing, extra, truncated or
        altered, or the manifest itself when it is missing or unreadable.
    """
    try:
        expected = json.loads((directory / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        raise DamagedCheckpoint(directory, MANIFEST, "missing (the save never finished)") from None
    except (ValueError, KeyError, TypeError):
        raise DamagedCheckpoint(directory, MANIFEST, "unreadable") from None
    found = _files(directory)
    for name in sorted(set(expected) | set(found)):
        if name not in found:
            raise DamagedCheckpoint(directory, name, "missing")
        if name not in expected:
            raise DamagedCheckpoint(directory, name, "not in the manifest")
        size = found[name].stat().st_size
        if size != expected[name]["size"]:
            raise DamagedCheckpoint(directory, name, f"{size} bytes, "
                                                     f"expected {expected[name]['size']}")
        if sha256_file(found[name]) != expected[name]["sha256"]:
            raise DamagedCheckpoint(directory, name, "sha256 mismatch")
