"""The one data set every peer trains on, per model, as float32 NHWC arrays."""

import numpy as np

from zoo.data.mnist import mnist_sample

INPUTS = {"lenet": (28, 28, 1), "resnet": (32, 32, 3)}


def training_arrays(model: str, n: int = 2048, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC images and int32 labels. LeNet: embedded MNIST digits. ResNet: seeded
    random 32x32 colour images. Every peer normalises `x / 255` inside its own step.

    Throughput does not depend on pixel values, only on shapes, so random colour
    images are an honest stand-in for CIFAR-sized input without a download.
    """
    if model == "lenet":
        images, labels = mnist_sample()
        return images[:n], labels[:n]
    rng = np.random.default_rng(seed)
    h, w, c = INPUTS[model]
    return (rng.integers(0, 256, (n, h, w, c), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.int32))
