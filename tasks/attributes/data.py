"""Data sets for attributes: generated cartoon faces and the CelebA layout (`celeba:ROOT`)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from zoo.data.faces import ATTRIBUTES, FaceConfig, load_faces
from zoo.data.images import load_centre_square
from zoo.errors import ZooError, unknown
from zoo.task import Dataset

DATASETS = {
    "faces": "generated cartoon faces with 12 attributes, people disjoint across splits "
             "(offline; the default)",
    "celeba:ROOT": "the CelebA layout: ROOT/list_attr_celeba.txt, list_eval_partition.txt "
                   "and img_align_celeba/",
}
CELEBA_SPLITS = ("train", "val", "test")  # list_eval_partition.txt: 0, 1, 2


def load(spec: str, faces: FaceConfig, size: int, crop: float) -> Dataset:
    """Images uint8 (N, size, size, 3) and attributes uint8 (N, A) 0/1 in three splits."""
    if spec == "faces":
        splits = {name: {"image": s["image"], "attributes": s["attributes"]}
                  for name, s in load_faces(faces, size).items()}
        return Dataset(splits, _info(ATTRIBUTES, size, spec, crop=1.0))
    if spec.startswith("celeba:"):
        return read_celeba(Path(spec.removeprefix("celeba:")).expanduser(), size, crop, spec)
    raise unknown("data set", spec, DATASETS)


def _info(names, size: int, spec: str, *, crop: float) -> dict:
    return {"attributes": list(names), "input_shape": [size, size, 3], "data": spec,
            "crop": crop}


def read_celeba(root: Path, size: int, crop: float, spec: str) -> Dataset:
    """CelebA's attribute list, official partition and aligned images under `root`.

    Raises:
      ZooError: naming the file (and line) of a missing file, a malformed count or
        header line, a row of the wrong length, a value other than -1/1, an image
        without a partition, or a partition other than 0/1/2.
    """
    if not root.is_dir():
        raise ZooError(f"celeba:{root}: no such directory; expected list_attr_celeba.txt, "
                       f"list_eval_partition.txt and img_align_celeba/ in it")
    names, files, values = read_attribute_list(_need(root / "list_attr_celeba.txt"))
    partition = read_partition(_need(root / "list_eval_partition.txt"))
    images_dir = _need(root / "img_align_celeba")
    split_of = []
    for file in files:
        if file not in partition:
            raise ZooError(f"{root / 'list_eval_partition.txt'}: no partition for {file} "
                           f"(listed in list_attr_celeba.txt); add a line '{file} 0|1|2'")
        split_of.append(partition[file])
    split_of = np.asarray(split_of)
    images = _read_images(images_dir, files, size, crop)
    splits = {}
    for i, name in enumerate(CELEBA_SPLITS):
        rows = np.flatnonzero(split_of == i)
        splits[name] = {"image": images[rows], "attributes": values[rows]}
    return Dataset(splits, _info(names, size, spec, crop=crop))


def read_attribute_list(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """`list_attr_celeba.txt`: a count line, a header of names, then `FILE v1 ... vA`
    rows of -1/1 (any whitespace). Returns names, files and 0/1 uint8 values."""
    lines = _lines(path)
    if len(lines) < 2 or not lines[0][1].strip().isdigit():
        raise ZooError(f"{path}:1: expected the number of images on the first line, then a "
                       f"line of attribute names")
    count, names = int(lines[0][1]), lines[1][1].split()
    if not names:
        raise ZooError(f"{path}:2: no attribute names on the header line")
    files, rows = [], []
    for number, line in lines[2:]:
        fields = line.split()
        if len(fields) != len(names) + 1:
            raise ZooError(f"{path}:{number}: {len(fields)} fields, expected a file name and "
                           f"{len(names)} values (one per attribute of line 2)")
        if any(v not in ("1", "-1") for v in fields[1:]):
            raise ZooError(f"{path}:{number}: attribute values must be -1 or 1, got "
                           f"{' '.join(fields[1:])}")
        files.append(fields[0])
        rows.append([v == "1" for v in fields[1:]])
    if len(files) != count:
        raise ZooError(f"{path}: line 1 announces {count} images but {len(files)} rows "
                       f"follow; fix the count or the rows")
    return names, files, np.asarray(rows, np.uint8).reshape(len(files), len(names))


def read_partition(path: Path) -> dict[str, int]:
    """`list_eval_partition.txt`: `FILE 0|1|2` (train, val, test) per line."""
    partition = {}
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ZooError(f"{path}:{number}: expected 'FILE 0|1|2' (train, val, test), "
                           f"got {line.strip()!r}")
        partition[fields[0]] = int(fields[1])
    return partition


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ZooError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]


def _need(path: Path) -> Path:
    if not path.exists():
        raise ZooError(f"{path}: missing; celeba:ROOT needs list_attr_celeba.txt, "
                       f"list_eval_partition.txt and img_align_celeba/ in ROOT")
    return path


def _read_images(folder: Path, files: list[str], size: int, crop: float) -> np.ndarray:
    images = np.empty((len(files), size, size, 3), np.uint8)
    for i, file in enumerate(files):
        if i and i % 10_000 == 0:
            print(f"celeba: read {i:,} of {len(files):,} images", file=sys.stderr)
        images[i] = load_centre_square(folder / file, size, crop)
    return images
