"""Pairs of photos for verification: drawn from held-out people, or read from LFW's
`pairs.txt`, as the val/test split arrays every data set of the task shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.errors import ZooError


def draw_pairs(person: np.ndarray, *, folds: int, per_fold: int,
               seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Matched and mismatched pairs in person-disjoint folds, like LFW's.

    The people are dealt into `folds` groups; each fold holds `per_fold` matched pairs
    (two different photos of one person) and `per_fold` mismatched ones (photos of two
    of its people), so no person appears in two folds.

    Args:
      person: (N,) the person of each photo.

    Returns:
      Photo indices a and b, `same` (uint8) and `fold` (int32), one entry per pair.

    Raises:
      ZooError: if a fold would get fewer than two people, or none with two photos.
    """
    rng = np.random.default_rng(seed)
    people = rng.permutation(np.unique(person))
    if len(people) < 2 * folds:
        raise ZooError(f"{len(people)} people cannot fill {folds} folds of pairs: each "
                       f"needs two people at least")
    photos = {p: np.flatnonzero(person == p) for p in people}
    out = []
    for fold, group in enumerate(np.array_split(people, folds)):
        repeated = [p for p in group if len(photos[p]) >= 2]
        if not repeated:
            raise ZooError(f"fold {fold + 1} of the pairs has no person with two photos; "
                           f"give more photos per person")
        for k in range(per_fold):
            first, second = rng.choice(photos[repeated[k % len(repeated)]], 2, replace=False)
            out.append((first, second, 1, fold))
            one, other = rng.choice(group, 2, replace=False)
            out.append((rng.choice(photos[one]), rng.choice(photos[other]), 0, fold))
    a, b, same, fold = (np.asarray(column) for column in zip(*out))
    return a, b, same.astype(np.uint8), fold.astype(np.int32)


def pair_split(images: np.ndarray, a: np.ndarray, b: np.ndarray, same: np.ndarray,
               fold: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of a val or test split: one row per pair."""
    return {"image_a": images[a], "image_b": images[b], "same": same.astype(np.uint8),
            "fold": fold.astype(np.int32)}


def read_lfw_pairs(path: Path) -> list[tuple[int, str, int, str, int]]:
    """LFW's `pairs.txt`: a header `FOLDS SIZE` (or just `SIZE`: one fold), then per
    fold SIZE matched lines `NAME N1 N2` and SIZE mismatched lines `NAME1 N1 NAME2 N2`.

    Returns:
      (fold, name a, photo number a, name b, photo number b) per pair, in file order.

    Raises:
      ZooError: naming `path:line` for a bad header, a line of the wrong shape or a
        photo number that is not a positive integer, or a count that disagrees with it.
    """
    if not path.is_file():
        raise ZooError(f"{path}: missing; lfw:ROOT needs pairs.txt and one folder per person "
                       f"(Name_Surname/Name_Surname_0001.jpg) in ROOT")
    lines = [(i + 1, line.split()) for i, line in enumerate(path.read_text().splitlines())
             if line.strip()]
    header = lines[0][1] if lines else []
    if not 1 <= len(header) <= 2 or not all(h.isdigit() and int(h) > 0 for h in header):
        raise ZooError(f"{path}:1: expected the header 'FOLDS PAIRS_PER_FOLD' (e.g. '10 300') "
                       f"or 'PAIRS', got {' '.join(header)!r}")
    folds, size = (int(header[0]), int(header[1])) if len(header) == 2 else (1, int(header[0]))
    body = lines[1:]
    if len(body) != 2 * folds * size:
        raise ZooError(f"{path}: the header announces {folds} fold(s) of {size} matched and "
                       f"{size} mismatched pairs ({2 * folds * size} lines) but "
                       f"{len(body)} follow")
    pairs = []
    for k, (number, fields) in enumerate(body):
        fold, matched = k // (2 * size), k % (2 * size) < size
        if matched and len(fields) == 3:
            fields = [fields[0], fields[1], fields[0], fields[2]]
        elif matched or len(fields) != 4:
            shape = "NAME N1 N2" if matched else "NAME1 N1 NAME2 N2"
            raise ZooError(f"{path}:{number}: expected a {'matched' if matched else 'mismatched'}"
                           f" pair '{shape}', got {' '.join(fields)!r}")
        if not (fields[1].isdigit() and fields[3].isdigit() and int(fields[1]) > 0
                and int(fields[3]) > 0):
            raise ZooError(f"{path}:{number}: photo numbers must be positive integers, got "
                           f"{fields[1]!r} and {fields[3]!r}")
        pairs.append((fold, fields[0], int(fields[1]), fields[2], int(fields[3])))
    return pairs


def lfw_photo(root: Path, name: str, number: int) -> Path:
    """LFW's file of photo `number` of `name`: ROOT/Name/Name_0001.jpg."""
    return root / name / f"{name}_{number:04d}.jpg"
