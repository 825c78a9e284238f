"""The compressed weight file (`model.zc`): sparse, quantized, entropy-coded.

Layout: b"ZOOC", a format byte, the header's length (uint32, little-endian), the header
(zstd-compressed JSON), then one blob after another. The header lists every tensor of
the model state by key path with its shape and the sizes of its blobs, plus the crc32
of all blobs, so a damaged file is refused rather than decoded into wrong weights.

A quantized kernel (`quantization.Quantized`) is stored as three blobs:
- positions of its non-zero codes, delta-coded (gap to the previous one, minus 1) as
  uint32 split into four byte planes, so the almost-always-zero high bytes cost nothing;
- the non-zero codes as one byte each, shifted to start at 0;
- its float32 per-channel scales and codebook.
Every blob is zstd-compressed (its Huffman and FSE stages are the entropy coder) when
that makes it smaller. Other tensors (biases, norm statistics) are stored as they are.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from zoo.errors import ZooError
from zoo_hardware.quantization import Quantized

MAGIC, FORMAT = b"ZOOC", 1
FORMAT_NAME = "compressed"  # how a workdir's run.json names weights in this format
_LEVEL = 22  # zstd's strongest: files are written once and read often
_PREFIX = struct.Struct("<4sBI")

Path_ = tuple  # a key path into the model state's nested dict, e.g. ("conv1", "kernel")


def flatten(state: Mapping) -> dict[Path_, np.ndarray]:
    """{key path: array} for a nested-dict model state."""
    out = {}
    for key, value in state.items():
        if isinstance(value, Mapping):
            out.update({(key, *sub): v for sub, v in flatten(value).items()})
        else:
            out[(key,)] = np.asarray(value)
    return out


def unflatten(flat: Mapping[Path_, Any]) -> dict:
    """The nested dict of `flatten`'s output."""
    out: dict = {}
    for path, value in flat.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def encode(state: Mapping, quantized: Mapping[Path_, Quantized], meta: Mapping[str, Any]) -> bytes:
    """The file's bytes for `state`, with the kernels in `quantized` stored by their codes.

    Args:
      state: the model state as a nested dict of arrays.
      quantized: {key path: Quantized} for the kernels stored as codes; they replace the
        float arrays of `state` at those paths.
      meta: JSON-able facts kept in the header (scheme, activation ranges...).
    """
    entries, blobs = [], []
    for path, array in flatten(state).items():
        entry = {"path": list(path), "shape": list(array.shape)}
        if path in quantized:
            q = quantized[path]
            entry.update(_code_entry(q))
            parts = _code_blobs(q, entry["offset"])
        else:
            entry["dtype"] = array.dtype.str
            parts = [np.ascontiguousarray(array).tobytes()]
        packed = [_pack(p) for p in parts]
        entry["blobs"] = [[len(b), z] for b, z in packed]
        entries.append(entry)
        blobs += [b for b, _ in packed]
    payload = b"".join(blobs)
    header = json.dumps({"tensors": entries, "meta": dict(meta), "crc32": zlib.crc32(payload)},
                        separators=(",", ":")).encode()
    header = zstandard.ZstdCompressor(level=_LEVEL).compress(header)
    return _PREFIX.pack(MAGIC, FORMAT, len(header)) + header + payload


def decode(data: bytes, source: str = "compressed weights") -> tuple[dict, dict[str, Any]]:
    """The model state (nested dict of float arrays) and meta of a file's bytes.

    Raises:
      ZooError: if the bytes are not a zoo compressed-weights file, or are damaged.
    """
    if len(data) < _PREFIX.size or data[:4] != MAGIC:
        raise ZooError(f"{source}: not a zoo compressed-weights file")
    _, version, header_size = _PREFIX.unpack_from(data)
    if version > FORMAT:
        raise ZooError(f"{source}: written by a newer zoo (format {version}); upgrade zoo")
    start = _PREFIX.size + header_size
    try:
        header = json.loads(zstandard.ZstdDecompressor().decompress(data[_PREFIX.size:start]))
    except (zstandard.ZstdError, ValueError):
        raise ZooError(f"{source}: damaged header; re-run `zoo compress`") from None
    payload = memoryview(data)[start:]
    if zlib.crc32(payload) != header["crc32"]:
        raise ZooError(f"{source}: checksum mismatch (truncated or corrupted); re-run `zoo compress`")
    flat, offset = {}, 0
    for entry in header["tensors"]:
        parts = []
        for size, packed in entry["blobs"]:
            blob = bytes(payload[offset:offset + size])
            parts.append(zstandard.ZstdDecompressor().decompress(blob) if packed else blob)
            offset += size
        flat[tuple(entry["path"])] = (_decode_codes(entry, parts).values() if "kind" in entry else
                                      np.frombuffer(parts[0], entry["dtype"]).reshape(entry["shape"]))
    return unflatten(flat), header["meta"]


def write(path: Path, state: Mapping, quantized: Mapping[Path_, Quantized],
          meta: Mapping[str, Any]) -> int:
    """Writes the file atomically (temp file + rename); returns its size in bytes."""
    data = encode(state, quantized, meta)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path.stat().st_size


def read(path: Path) -> tuple[dict, dict[str, Any]]:
    """`decode` of the file at `path`."""
    if not path.is_file():
        raise ZooError(f"{path}: missing; the compressed workdir is incomplete, re-run `zoo compress`")
    return decode(path.read_bytes(), str(path))


def blob_bytes(path: Path) -> dict[Path_, int]:
    """Bytes each tensor takes in the file at `path` (its blobs, header excluded)."""
    data = path.read_bytes()
    _, _, header_size = _PREFIX.unpack_from(data)
    header = json.loads(zstandard.ZstdDecompressor().decompress(
        data[_PREFIX.size:_PREFIX.size + header_size]))
    return {tuple(e["path"]): sum(size for size, _ in e["blobs"]) for e in header["tensors"]}


def float32_bytes(state: Mapping) -> int:
    """Bytes on disk of `state` as a plain float32 checkpoint (an uncompressed .npz)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{"/".join(map(str, p)): a.astype(np.float32)
                        for p, a in flatten(state).items()})
    return buffer.getbuffer().nbytes


def _code_entry(q: Quantized) -> dict[str, Any]:
    if q.codebook is not None:
        return {"kind": "kmeans", "offset": 1, "codebook": len(q.codebook), "scale": len(q.scale)}
    offset = int(min(q.codes.min(), -1))  # int: -qmax (or -1), binary: -1
    return {"kind": "linear", "offset": offset, "codebook": 0, "scale": len(q.scale)}


def _code_blobs(q: Quantized, offset: int) -> list[bytes]:
    flat = q.codes.ravel()
    positions = np.flatnonzero(flat)
    symbols = flat[positions] - offset
    if symbols.size and (symbols.min() < 0 or symbols.max() > 255):
        raise ValueError("codes do not fit one byte each")
    gaps = np.diff(positions, prepend=-1).astype("<u4") - 1
    planes = gaps.view(np.uint8).reshape(-1, 4).T.tobytes()  # low bytes first, then higher
    tables = np.concatenate([q.scale, q.codebook if q.codebook is not None else []])
    return [planes, symbols.astype(np.uint8).tobytes(), tables.astype("<f4").tobytes()]


def _decode_codes(entry: Mapping[str, Any], parts: list[bytes]) -> Quantized:
    planes, symbols, tables = parts
    gaps = np.frombuffer(planes, np.uint8).reshape(4, -1).T.copy().view("<u4").ravel()
    positions = np.cumsum(gaps.astype(np.int64) + 1) - 1
    codes = np.zeros(int(np.prod(entry["shape"])), np.int32)
    codes[positions] = np.frombuffer(symbols, np.uint8).astype(np.int32) + entry["offset"]
    tables = np.frombuffer(tables, "<f4")
    scale, codebook = tables[:entry["scale"]], tables[entry["scale"]:]
    return Quantized(codes.reshape(entry["shape"]), scale,
                     codebook if entry["kind"] == "kmeans" else None)


def _pack(blob: bytes) -> tuple[bytes, bool]:
    """zstd-compressed when that is smaller, else as is; and which it is."""
    packed = zstandard.ZstdCompressor(level=_LEVEL).compress(blob)
    return (packed, True) if len(packed) < len(blob) else (blob, False)
