"""A card's data set from the user's own copy: `zoo eval --pretrained CARD --data SPEC`.

Some weights were measured on data zoo cannot download (ImageNet's images are licensed
through image-net.org). A user who has a copy passes it with `--data`; its classes are
matched to the card's by name, or for a card whose classes are a named list
(`zoo.data.class_lists`, e.g. imagenet-1k) also by synset id, so ImageNet's own layout
(`val/n01440764/*.JPEG`) or any subset of its classes evaluates the card's 1,000-way
head. Every image of the copy is evaluated: the weights never trained on it.
"""

from __future__ import annotations

import numpy as np

from zoo.data import class_lists
from zoo.data.sources import Concatenated, Relabelled, Source, as_source
from zoo.errors import ZooError
from zoo.hub.card import Card
from zoo.task import Dataset, Task

SPLITS = ("train", "val", "test")


def evaluation_data(task: Task, card: Card) -> Dataset:
    """`task`'s data set (its config names the user's copy) as one evaluation set in
    every split, labelled by the card's class indices.

    Raises:
      ZooError: a class of the copy that the card does not know, or a data set whose
        examples carry no class label while its classes differ from the card's.
    """
    data = task.load_data()
    classes = list(card.info.get("classes", []))
    parts = [data.splits[s] for s in SPLITS]
    streamed = any(isinstance(part, Source) for part in parts)
    if streamed:  # image files read on demand (folder:, imagenet:): never all in memory
        examples = Concatenated([as_source(part) for part in parts])
    else:
        examples = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    found = list(data.info.get("classes", []))
    if found != classes:
        if "label" not in (examples[0] if streamed else examples):
            raise ZooError(f"{task.config.data}: its classes ({', '.join(found[:5])}...) are not "
                           f"the card's ({', '.join(classes[:5])}...)")
        mapping = card_labels(found, classes)
        if streamed:
            examples = Relabelled(examples, mapping)
        else:
            examples["label"] = mapping[examples["label"]]
    info = {**data.info, "classes": classes}
    return Dataset({split: examples for split in SPLITS}, info)


def card_labels(found: list[str], classes: list[str]) -> np.ndarray:
    """The card's class index of each class `found` in the user's data."""
    listed = class_lists.name_of(classes)
    if listed is not None:
        return class_lists.folder_labels(found, class_lists.get(listed))
    index = {name: i for i, name in enumerate(classes)}
    unknown = [name for name in found if name not in index]
    if unknown:
        raise ZooError(f"class {unknown[0]!r} of the data is not one of the card's "
                       f"{len(classes)} classes ({', '.join(classes[:5])}...)")
    return np.asarray([index[name] for name in found], np.int32)
