"""Labelled image files as a streaming source, and the layouts they come in.

`ImageFiles` holds only file names and labels; each image is decoded (and resized) when
a batch needs it, in the input workers. Layouts: one sub-folder per class (`folder:`),
the ImageNet layout (`imagenet:ROOT` with train/ and val/, optionally test/, each with
one sub-folder per class) and a TSV list of files (`tsv:`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zoo.data.images import Preprocess, class_folders, load_image, resize
from zoo.data.sources import Example, Source, files_fingerprint
from zoo.errors import ZooError


class ImageFiles(Source):
    """Images under `root` with one int label each: "image" uint8 (h, w, channels) and
    "label" int32, decoded on demand.

    Args:
      names: file paths relative to `root` (kept as one numpy string array: a million
        names cost tens of MB, not a Python object each).
      size: (h, w) of every finished image, resized as `preprocess` says (squashed, or
        resized and centre-cropped: `Preprocess.resize`), as `load_image` resizes.
    """

    def __init__(self, root: str | Path, names: Sequence[str], labels: np.ndarray,
                 size: Sequence[int], channels: int, preprocess: Preprocess = Preprocess()):
        self.root, self.preprocess = str(root), preprocess
        self.names = np.asarray(names, dtype=np.str_)
        self.labels = np.asarray(labels, np.int32)
        self.size, self.channels = (int(size[0]), int(size[1])), channels
        if len(self.names) != len(self.labels):
            raise ValueError(f"{len(self.names)} files but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.names)

    def origin(self, index: int) -> str:
        return f"{self.root}/{self.names[index]}"

    def read(self, index: int) -> Example:
        return {"image": load_image(self.origin(index), None, self.channels),
                "label": self.labels[index]}

    def finish(self, example: Example) -> Example:
        return {**example, "image": resize(example["image"], self.size, self.preprocess)}

    def __getitem__(self, index: int) -> Example:
        # Decoded and resized in one PIL pass: the same pixels as finish(read(index)).
        return {"image": load_image(self.origin(index), self.size, self.channels, self.preprocess),
                "label": self.labels[index]}

    def fingerprint(self) -> str:
        return files_fingerprint(self.root, self.names, self.size, self.channels,
                                 self.preprocess.crop_pct, self.preprocess.interpolation,
                                 self.labels.tobytes())


def folder_source(root: Path, size: Sequence[int], channels: int,
                  preprocess: Preprocess = Preprocess(), spec: str = "folder:",
                  ) -> tuple[ImageFiles, list[str]]:
    """Every image of `root/<class>/<image>` as one streamed source, and the class names
    (listed by `images.class_folders`, never opened)."""
    names, labels, classes = class_folders(root, spec)
    return ImageFiles(root, names, labels, size, channels, preprocess), classes


def imagenet_splits(root: Path, size: Sequence[int], channels: int, spec: str,
                    preprocess: Preprocess = Preprocess()) -> tuple[dict[str, ImageFiles], list[str]]:
    """The ImageNet layout: ROOT/train/<class>/*, ROOT/val/<class>/* and optionally
    ROOT/test/<class>/*. The classes are train's; val and test may hold fewer.

    Returns:
      {"train", "val"[, "test"]: source}, class names.
    """
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise ZooError(f"{spec}: expected {root}/train and {root}/val, each with one "
                       f"sub-folder per class (the ImageNet layout)")
    train, classes = folder_source(root / "train", size, channels, preprocess, f"{spec} train ")
    splits = {"train": train}
    index = {name: i for i, name in enumerate(classes)}
    for split in ("val", "test"):
        if not (root / split).is_dir():
            continue
        names, labels, found = class_folders(root / split, f"{spec} {split} ", least=1)
        unknown = sorted(set(found) - set(index))
        if unknown:
            raise ZooError(f"{spec}: {split}/ has class folder(s) {', '.join(unknown[:5])} "
                           f"that train/ lacks; every class needs training images")
        relabel = np.asarray([index[name] for name in found], np.int32)
        splits[split] = ImageFiles(root / split, names, relabel[labels], size, channels,
                                   preprocess)
    return splits, classes


def mean_brightness(source: Source, samples: int = 64) -> float:
    """The mean pixel value of up to `samples` images spread over `source` (decoded),
    enough to tell dark-background data (MNIST) from photos without reading them all."""
    picks = np.unique(np.linspace(0, len(source) - 1, min(samples, len(source))).astype(int))
    means, error = [], None
    for i in picks:
        try:
            means.append(source[int(i)]["image"].mean())
        except Exception as e:  # a bad file: the run's --on-bad-example policy decides later
            error = error or e
    if not means:
        raise error
    return float(np.mean(means))
