"""Named class lists: ImageNet's 1,000 classes kept once, referred to by name.

A hub card's `info.classes` may be the name of a list here (`"classes": "imagenet-1k"`)
rather than the names themselves: `resolve` expands it when a card is read and
`name_of` folds it back when one is written, so an index of ImageNet cards stays
readable. A list also holds its synset ids, the folder names of ImageNet's own layout
(`val/n01440764/*.JPEG`): `folder_labels` maps a folder data set onto the list's class
indices by synset id or by name, so a card's 1,000-way head is checked on a user's copy
of ImageNet, or any subset of its classes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from zoo.errors import ZooError, unknown

FILES = {"imagenet-1k": Path(__file__).parent / "imagenet_classes.json"}


@dataclass(frozen=True)
class ClassList:
    """A data set's classes in class-index order, by synset id and by short name."""

    name: str
    ids: tuple[str, ...]  # WordNet synset ids (ImageNet's folder names)
    names: tuple[str, ...]  # short names (what predict prints)

    def how_to_get(self) -> str:
        """What a user passes for this data set, which zoo cannot download."""
        return (f"zoo cannot download {self.name} (its images are licensed through "
                f"image-net.org): pass your copy with --data, e.g. its validation folder "
                f"folder:/data/imagenet/val (one folder per synset id such as {self.ids[0]}, "
                f"or per class name), or your own folder:PATH to fine-tune on")


@cache
def get(name: str) -> ClassList:
    """The named list (package data, read once).

    Raises:
      ZooError: no list of that name.
    """
    if name not in FILES:
        raise unknown("class list", name, FILES)
    rows = json.loads(FILES[name].read_text())["classes"]
    return ClassList(name, tuple(r[0] for r in rows), tuple(r[1] for r in rows))


def resolve(classes: str | Sequence[str]) -> list[str]:
    """Class names from a card's `info.classes`: a list of names, or a list's name."""
    return list(get(classes).names) if isinstance(classes, str) else list(classes)


def name_of(classes: Sequence[str]) -> str | None:
    """The name of the list `classes` equals, if any (what a written card refers to)."""
    for name in FILES:
        if tuple(classes) == get(name).names:
            return name
    return None


def folder_labels(folders: Sequence[str], classes: ClassList) -> np.ndarray:
    """The class index in `classes` of each folder name (a synset id or a short name).

    Raises:
      ZooError: a folder names no class of the list, or a short name two classes
        share (ImageNet has two "crane"s and two "maillot"s: use the synset id).
    """
    by_id = {sid: i for i, sid in enumerate(classes.ids)}
    by_name: dict[str, list[int]] = {}
    for i, name in enumerate(classes.names):
        by_name.setdefault(name, []).append(i)
    out = []
    for folder in folders:
        found = [by_id[folder]] if folder in by_id else by_name.get(folder, [])
        if len(found) > 1:
            raise ZooError(f"folder {folder!r} names {len(found)} {classes.name} classes ("
                           f"{', '.join(classes.ids[i] for i in found)}): name it by synset id")
        if not found:
            raise ZooError(f"folder {folder!r} is neither a synset id (e.g. {classes.ids[0]}) "
                           f"nor a class name of {classes.name}")
        out.append(found[0])
    return np.asarray(out, np.int32)
