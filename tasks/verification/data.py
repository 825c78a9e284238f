"""Data sets for verification: people to train on, pairs of other people to judge.

Every data set gives a train split of photos labelled by person ("image", "identity")
and val/test splits of pairs ("image_a", "image_b", "same", "fold") whose people never
appear in training. Where the training people come from:

- `faces`: the generated people of the train split; val and test pairs are drawn from
  the val and test people, the test pairs in 10 person-disjoint folds like LFW's.
- `lfw:ROOT`: the test pairs are ROOT/pairs.txt; training uses the people in ROOT that
  pairs.txt never names and that have two photos or more (a tenth of them held out for
  validation pairs). Real LFW leaves few such people: for a useful model train on
  identity folders of your own (e.g. CASIA-WebFace) with `--set train_folder=PATH`.
- `folder:PATH`: one sub-folder per person; 80% of the people train, pairs of 10%
  validate and pairs of the last 10% (in up to 10 folds) test.

`train_folder=PATH` (one sub-folder per person) replaces the training people (and the
validation pairs) of any of them; the test pairs stay those of `--data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data.faces import FaceConfig, load_faces
from zoo.data.images import folder_files, load_centre_square
from zoo.data.loader import split_indices
from zoo.errors import ZooError, unknown
from zoo.task import Dataset
from zoo_tasks.verification.pairs import draw_pairs, lfw_photo, pair_split, read_lfw_pairs

DATASETS = {
    "faces": "generated cartoon people; test pairs of 300 unseen people in 10 folds "
             "(offline; the default)",
    "lfw:ROOT": "LFW: ROOT/pairs.txt tests (10 folds); trains on the people it never names, "
                "or on --set train_folder=PATH",
    "folder:PATH": "one sub-folder per person: 80% of the people train, pairs of the rest "
                   "validate and test",
}
FOLDS = 10
PAIR_SEED = 20240601  # fixed: every run judges the same pairs
DEFAULT_CROP = {"faces": 1.0, "lfw": 0.6, "folder": 1.0}  # LFW's 250x250 photos: the face


@dataclass
class People:
    """Photos labelled by person (0-based, any order)."""

    images: np.ndarray
    person: np.ndarray

    def subset(self, people: np.ndarray) -> People:
        """The photos of `people`, relabelled 0..len(people)-1 in that order."""
        keep = np.isin(self.person, people)
        relabel = {int(p): i for i, p in enumerate(people)}
        return People(self.images[keep],
                      np.asarray([relabel[int(p)] for p in self.person[keep]], np.int32))

    def pairs(self, seed: int, folds: int = FOLDS) -> dict[str, np.ndarray]:
        """A val/test split: about one matched and one mismatched pair per person."""
        count = len(np.unique(self.person))
        folds = max(1, min(folds, count // 2))
        a, b, same, fold = draw_pairs(self.person, folds=folds, per_fold=count // folds,
                                      seed=seed)
        return pair_split(self.images, a, b, same, fold)


def load(spec: str, faces: FaceConfig, size: int, crop: float, train_folder: str) -> Dataset:
    """The train split of people and the val/test splits of pairs for `spec`."""
    kind, _, location = spec.partition(":")
    if spec != "faces" and (kind not in ("lfw", "folder") or not location):
        raise unknown("data set", spec, DATASETS)
    crop = crop or DEFAULT_CROP[kind]
    path = Path(location).expanduser()
    train = val = None
    if kind == "faces":
        splits = {name: People(s["image"], s["person"]) for name, s in load_faces(faces, size).items()}
        train, val, test = (splits["train"], splits["val"].pairs(PAIR_SEED),
                            splits["test"].pairs(PAIR_SEED + 1))
    elif kind == "lfw":
        test, others = read_lfw(path, size, crop, skip_people=bool(train_folder))
        if others is not None:
            train, val = _train_and_val(others, spec)
    else:
        train, val, test = _split_folder(read_people(folder_files(path, "person"), size, crop))
    if train_folder:
        folders = folder_files(Path(train_folder).expanduser(), "person")
        train, val = _train_and_val(read_people(folders, size, crop), f"train_folder={train_folder}")
    info = {"input_shape": [size, size, 3], "data": spec, "crop": crop,
            "identities": int(train.person.max()) + 1}
    return Dataset({"train": {"image": train.images, "identity": train.person},
                    "val": val, "test": test}, info)


def read_people(folders: dict[str, list[Path]], size: int, crop: float) -> People:
    """Each person's photo files (see `folder_files`) as centre squares of `size` pixels."""
    images, person = [], []
    for i, files in enumerate(folders.values()):
        images += [load_centre_square(f, size, crop) for f in files]
        person += [i] * len(files)
    return People(np.stack(images), np.asarray(person, np.int32))


def read_lfw(root: Path, size: int, crop: float, *, skip_people: bool
             ) -> tuple[dict[str, np.ndarray], People | None]:
    """The test pairs of ROOT/pairs.txt, and (unless `skip_people`) the photos of the
    people it never names who have two photos or more."""
    pairs = read_lfw_pairs(root / "pairs.txt")
    keys = sorted({(name, n) for _, *ends in pairs for name, n in (ends[:2], ends[2:])})
    for name, n in keys:
        if not lfw_photo(root, name, n).is_file():
            raise ZooError(f"{lfw_photo(root, name, n)}: missing, but {root / 'pairs.txt'} "
                           f"names photo {n} of {name}")
    index = {key: i for i, key in enumerate(keys)}
    images = np.stack([load_centre_square(lfw_photo(root, *key), size, crop) for key in keys])
    a = np.asarray([index[(p[1], p[2])] for p in pairs])
    b = np.asarray([index[(p[3], p[4])] for p in pairs])
    same = np.asarray([p[1] == p[3] for p in pairs])
    test = pair_split(images, a, b, same, np.asarray([p[0] for p in pairs]))
    if skip_people:
        return test, None
    named = {name for name, _ in keys}
    others = {name: files for name, files in folder_files(root, kind="person").items()
              if name not in named and len(files) >= 2}
    if len(others) < 4:
        raise ZooError(f"lfw:{root}: only {len(others)} people outside pairs.txt have two "
                       f"photos or more, too few to train on; give identity folders of your "
                       f"own with --set train_folder=PATH (one sub-folder per person)")
    return test, read_people(others, size, crop)


def _train_and_val(people: People, what: str) -> tuple[People, dict[str, np.ndarray]]:
    """Nine tenths of the people to train on, pairs of the others to validate with."""
    ids = np.unique(people.person)
    n_val = max(2, len(ids) // 10)
    if len(ids) - n_val < 2:
        raise ZooError(f"{what}: {len(ids)} people are too few to train and validate on; "
                       f"give at least 4")
    parts = split_indices(len(ids), {"train": len(ids) - n_val, "val": n_val}, PAIR_SEED)
    return people.subset(ids[parts["train"]]), people.subset(ids[parts["val"]]).pairs(PAIR_SEED)


def _split_folder(people: People):
    """80% of the people train; pairs of 10% validate and of the other 10% test."""
    ids = np.unique(people.person)
    n_val = n_test = max(2, len(ids) // 10)
    if len(ids) - n_val - n_test < 2:
        raise ZooError(f"folder: {len(ids)} people are too few to train, validate and test "
                       f"on; give at least 6 (one sub-folder per person)")
    parts = split_indices(len(ids), {"train": len(ids) - n_val - n_test, "val": n_val,
                                     "test": n_test}, PAIR_SEED)
    return (people.subset(ids[parts["train"]]), people.subset(ids[parts["val"]]).pairs(PAIR_SEED),
            people.subset(ids[parts["test"]]).pairs(PAIR_SEED + 1))
