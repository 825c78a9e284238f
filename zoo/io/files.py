"""Files every layer writes and checks: content digests and atomic JSON.

Checkpoint manifests and hub downloads check the same sums; run records, metrics and
hub indexes are written the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, data: Any) -> None:
    """Writes JSON atomically (temp file + rename): readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=jsonable) + "\n")
    os.replace(tmp, path)


def jsonable(value: Any) -> Any:
    """numpy scalars and arrays to plain Python (a `json.dumps` default)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
