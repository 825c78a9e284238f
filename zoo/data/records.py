"""Examples as ArrayRecord records: the format `zoo data pack` writes and `packed:` reads.

A record is one example, the task's own fields as they go into a batch: a 4-byte length,
a JSON header of [field, dtype, shape] and the fields' raw bytes. Shards are ArrayRecord
files (group size 1, each record zstd-compressed on its own), read by random access:
`PackedSource` opens them lazily, in each worker. This module runs in the input
workers, so it imports no JAX: `array_record`'s own reader.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.data.sources import Example, Source
from zoo.data.workers import bad_example_error, describe_failure, installed
from zoo.io.files import sha256_file

WRITER_OPTIONS = "group_size:1,zstd:1"  # random access to every record; fast to write


def encode(example: Example) -> bytes:
    arrays = {k: np.asarray(v) for k, v in example.items()}
    header = json.dumps([[k, a.dtype.str, list(a.shape)] for k, a in arrays.items()]).encode()
    return b"".join([struct.pack("<I", len(header)), header, *(a.tobytes() for a in arrays.values())])


def decode(record: bytes) -> Example:
    (length,) = struct.unpack_from("<I", record)
    offset, out = 4 + length, {}
    for key, dtype, shape in json.loads(record[4:offset]):
        array = np.frombuffer(record, np.dtype(dtype), int(np.prod(shape)), offset)
        out[key] = array.reshape(shape)
        offset += array.nbytes
    return out


class PackedSource(Source):
    """One split of a pack: its shards, read by random access.

    Args:
      shards: the shard files, in order.
      digests: their sha256, which make the fingerprint (nothing is re-read for it).
    """

    def __init__(self, shards: Sequence[str | Path], digests: Sequence[str], count: int):
        self.shards, self.digests, self.count = [str(p) for p in shards], list(digests), count
        self._reader = None

    def __len__(self) -> int:
        return self.count

    def __getstate__(self):
        return {**self.__dict__, "_reader": None}  # open files stay in their process

    def read(self, index: int) -> Example:
        if self._reader is None:
            from array_record.python.array_record_data_source import ArrayRecordDataSource

            self._reader = ArrayRecordDataSource(self.shards)
        return decode(self._reader[index])

    def origin(self, index: int) -> str:
        return f"record {index} of {os.path.dirname(self.shards[0])}"

    def fingerprint(self) -> str:
        return hashlib.sha256(",".join(self.digests).encode()).hexdigest()


def write_shard(split: str, start: int, stop: int, path: str) -> dict:
    """Writes examples start..stop-1 of `split` (a source installed in this worker) to
    `path`, through a temporary file renamed into place when complete.

    Returns:
      {"file", "count", "sha256", "bad": ["origin: problem", ...]} (under the skip
      policy an unreadable example is left out; under raise it stops the pack).
    """
    from array_record.python.array_record_module import ArrayRecordWriter

    source, on_bad = installed(split)
    tmp = f"{path}.tmp"
    writer = ArrayRecordWriter(tmp, WRITER_OPTIONS)
    count, bad = 0, []
    try:
        for index in range(start, stop):
            try:
                example = source[index]
            except Exception as e:  # a user's file; see workers.read_batch
                problem = describe_failure(source, index, e)
                if on_bad == "raise":
                    raise bad_example_error(problem) from None
                bad.append(problem)
                continue
            writer.write(encode(example))
            count += 1
    finally:
        writer.close()
    digest = sha256_file(Path(tmp))
    os.replace(tmp, path)
    return {"file": os.path.basename(path), "count": count, "sha256": digest, "bad": bad}
