"""What each benchmark trains: a zoo task fixed to one model and one set of arrays.

The zoo and bare-JAX peers both take the task's model, augmentation and loss, so they
differ only in the training loop; the Keras and PyTorch peers rebuild the image models
on the same arrays. A workload's task reads its data from memory, never from its spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.config import apply_overrides
from zoo.registry import get_task
from zoo.task import Dataset, Task

INPUTS = {"lenet": (28, 28, 1), "resnet": (32, 32, 3)}  # image models: every peer
SEQUENCE = {"crnn": "ocr"}  # sequence models: task name (zoo and bare JAX peers only)
MODELS = (*INPUTS, *SEQUENCE)
BATCH_SIZES = {"lenet": 128, "resnet": 128, "crnn": 32}  # each task's own default
EXAMPLES = 2048


@dataclass(frozen=True)
class Workload:
    model: str
    task: Task  # configured for the model and batch size, fed `train` from memory
    train: dict[str, np.ndarray]

    @property
    def info(self) -> dict[str, Any]:
        return self.task.load_data().info


def load(model: str, batch_size: int, dtype: str = "float32") -> Workload:
    """The task, arrays, batch size and compute dtype every peer of `model` trains with."""
    task_cls = get_task(SEQUENCE.get(model, "classification"))
    overrides = [f"model={model}"]
    if model in INPUTS:
        images, labels = image_arrays(model)
        train = {"image": images, "label": labels}
        info = {"classes": [str(i) for i in range(10)], "input_shape": list(images.shape[1:])}
        overrides.append("augment=none")
    else:
        real = task_cls().load_data()
        train, info = {k: v[:EXAMPLES] for k, v in real.splits["train"].items()}, real.info
    small = {k: v[:256] for k, v in train.items()}
    dataset = Dataset({"train": train, "val": small, "test": small}, info)
    injected = type(f"Bench{task_cls.__name__}", (task_cls,), {"load_data": lambda self: dataset})
    config = apply_overrides(task_cls.Config(), [*overrides, f"train.batch_size={batch_size}",
                                                 f"train.dtype={dtype}"])
    return Workload(model, injected(config), train)


def image_arrays(model: str, n: int = EXAMPLES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC images and int32 labels. LeNet: embedded MNIST digits. ResNet: seeded
    random 32x32 colour images. Every peer normalises `x / 255` inside its own step.

    Throughput does not depend on pixel values, only on shapes, so random colour
    images are an honest stand-in for CIFAR-sized input without a download.
    """
    if model == "lenet":
        from zoo.data.mnist import mnist_sample

        images, labels = mnist_sample()
        return images[:n], labels[:n]
    rng = np.random.default_rng(seed)
    h, w, c = INPUTS[model]
    return (rng.integers(0, 256, (n, h, w, c), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.int32))
