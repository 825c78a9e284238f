"""Image classification: LeNet, MLP and ResNet on digits or your own image folders."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.config import (EarlyStoppingConfig, OptimizerConfig, Range, TaskConfig, TrainConfig,
                        bounded)
from zoo.data.image_sets import IMAGE_SETS, load_image_set
from zoo.data.images import load_image, match_background, to_unit_range
from zoo.models import CLASSIFIERS, create_classifier
from zoo.task import Batch, Dataset, Task
from zoo_tasks.classification import augment


@dataclass(frozen=True)
class ClassificationConfig(TaskConfig):
    model: str = "lenet"  # lenet | mlp | resnet | resnet-wide
    data: str = "mnist-sample"  # mnist-sample | mnist | digits | folder:PATH
    activation: str = "relu"  # see zoo.models.ACTIVATIONS
    image_size: int = 0  # resize to this square size (0: the data set's own)
    channels: int = 0  # 1 grey or 3 colour (0: the data set's own)
    augment: Literal["affine", "flip_affine", "none"] = "affine"
    label_smoothing: float = 0.0
    train: TrainConfig = TrainConfig(epochs=30, batch_size=128)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=2e-3, schedule="cosine",
                                                 warmup_epochs=1.0)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=10)


class ClassificationTask(Task):
    """Predicts one class per image; reports test `accuracy`."""

    name = "classification"
    description = "image classification (LeNet, MLP, ResNet) on digits or an image folder"
    Config = ClassificationConfig
    models = tuple(CLASSIFIERS)
    datasets = IMAGE_SETS
    metric = "accuracy"
    metric_mode = "max"

    def load_data(self) -> Dataset:
        return load_image_set(self.config.data, self.config.image_size, self.config.channels)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        return create_classifier(self.config.model, info["input_shape"], len(info["classes"]),
                                 activation=self.config.activation, dtype=self.compute_dtype,
                                 rngs=rngs)

    def augment(self, batch: Batch, rng: jax.Array) -> Batch:
        images = to_unit_range(batch["image"])
        if self.config.augment != "none":
            k_flip, k_affine = jax.random.split(rng)
            if self.config.augment == "flip_affine":
                images = augment.random_flip(images, k_flip)
            images = augment.random_affine(images, k_affine)
        return {**batch, "image": images}

    def loss(self, model, batch, rng):
        del rng
        logits = model(batch["image"])
        labels = optax.smooth_labels(jax.nn.one_hot(batch["label"], logits.shape[-1]),
                                     self.config.label_smoothing)
        loss = optax.softmax_cross_entropy(logits, labels).mean()
        accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
        return loss, {"accuracy": accuracy}

    def eval_step(self, model, batch):
        logits = model(to_unit_range(batch["image"]))
        mask = batch["mask"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        correct = jnp.argmax(logits, -1) == batch["label"]
        return {"count": mask.sum(), "loss": (losses * mask).sum(), "accuracy": (correct * mask).sum()}

    @classmethod
    def add_predict_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IMAGE", help="image files (any size or mode)")
        parser.add_argument("--top-k", type=bounded(int, Range(1)), default=1,
                            help="classes to print per image")

    def predict(self, model, info, args) -> str:
        h, w, c = info["input_shape"]
        dark = info.get("dark_background", False)
        images = np.stack([match_background(load_image(p, (h, w), c), dark) for p in args.inputs])
        probs = np.asarray(jax.nn.softmax(model(to_unit_range(jnp.asarray(images)))))
        lines = []
        for path, p in zip(args.inputs, probs):
            top = np.argsort(-p)[: max(1, args.top_k)]
            ranked = ", ".join(f"{info['classes'][i]} (p={p[i]:.3f})" for i in top)
            lines.append(f"{path}: {ranked}")
        return "\n".join(lines)
