"""A JSON-lines file as a streaming source: one example per line, read by its offset.

Only the byte offset of each line is kept (8 bytes an example), found in one pass over
the file; a line is parsed when a batch needs it, in the input workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from zoo.data.sources import Example, Source, files_fingerprint
from zoo.errors import ZooError

Fields = Mapping[str, tuple[str, Sequence[int]]]  # name -> (dtype, shape)


class JsonLines(Source):
    """`{"x": [0.1, 2.0], "label": 1}` lines as examples of the declared `fields`.

    Args:
      fields: each key read from a line, as an array of that (dtype, shape).
    """

    def __init__(self, path: str | Path, fields: Fields):
        self.path = str(Path(path).expanduser())
        self.fields = {k: (np.dtype(dtype), tuple(shape)) for k, (dtype, shape) in fields.items()}
        if not os.path.isfile(self.path):
            raise ZooError(f"{self.path}: no such file (JSON lines: one object per line)")
        with open(self.path, "rb") as f:
            offsets, position = [], 0
            for line in f:
                if line.strip():
                    offsets.append(position)
                position += len(line)
        self.offsets = np.asarray(offsets, np.int64)
        self._file = None

    def __getstate__(self):
        return {**self.__dict__, "_file": None}  # each process opens its own

    def __len__(self) -> int:
        return len(self.offsets)

    def origin(self, index: int) -> str:
        return f"{self.path}, line {index + 1} of its non-empty lines"

    def read(self, index: int) -> Example:
        if self._file is None:
            self._file = open(self.path, "rb")
        self._file.seek(self.offsets[index])
        record = json.loads(self._file.readline())
        missing = [k for k in self.fields if k not in record]
        if missing:
            raise ZooError(f"{self.origin(index)}: no {', '.join(missing)}")
        return {k: np.asarray(record[k], dtype).reshape(shape)
                for k, (dtype, shape) in self.fields.items()}

    def fingerprint(self) -> str:
        return files_fingerprint(os.path.dirname(self.path), [os.path.basename(self.path)],
                                 sorted((k, d.str, s) for k, (d, s) in self.fields.items()))
