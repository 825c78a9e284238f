"""Image classification: LeNet, MLP, ResNets, ViTs and MobileNetV3 on digits or your own
image folders, from scratch or from ImageNet weights."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from zoo.batching import Prepared
from zoo.config import EarlyStoppingConfig, OptimizerConfig, Positive, TaskConfig, TrainConfig
from zoo.data import augment
from zoo.data.host_augment import crop_flip
from zoo.data.image_sets import IMAGE_SETS, load_image_set
from zoo.data.images import Preprocess, as_image, match_background, to_unit_range
from zoo.models import CLASSIFIERS, create_classifier
from zoo.predictions import Classification
from zoo.task import Batch, Dataset, PredictOptions, Task, row_mean


@dataclass(frozen=True)
class ClassificationConfig(TaskConfig):
    model: str = "lenet"  # see `zoo info classification` (models)
    data: str = "mnist-sample"  # mnist-sample | mnist | digits | folder:PATH | imagenet:ROOT | tsv:FILE | hf:PATH | packed:DIR
    activation: str = "relu"  # see zoo.models.ACTIVATIONS
    image_size: int = 0  # resize to this square size (0: the data set's own)
    channels: int = 0  # 1 grey or 3 colour (0: the data set's own)
    preprocess: Preprocess = Preprocess()  # resize/crop and mean/std (a pretrained card sets it)
    # affine, flip_affine: on device; crop_flip: random-resized crop and flip of each
    # full-size image in the input workers (ImageNet-style, for streamed image files)
    augment: Literal["affine", "flip_affine", "crop_flip", "none"] = "affine"
    label_smoothing: float = 0.0
    train: TrainConfig = TrainConfig(epochs=30, batch_size=128)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=2e-3, schedule="cosine",
                                                 warmup_epochs=1.0)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=10)


@dataclass(frozen=True)
class ClassificationOptions(PredictOptions):
    top_k: Positive = 1  # classes listed per image, most probable first


class ClassificationTask(Task):
    """Predicts one class per image; reports test `accuracy`."""

    name = "classification"
    description = ("image classification (LeNet, MLP, ResNets, ViTs, MobileNetV3) on digits or "
                   "an image folder")
    Config = ClassificationConfig
    models = tuple(CLASSIFIERS)
    datasets = IMAGE_SETS
    metric = "accuracy"
    metric_mode = "max"
    PredictOptions = ClassificationOptions
    Result = Classification

    def load_data(self) -> Dataset:
        cfg = self.config
        return load_image_set(cfg.data, cfg.image_size, cfg.channels, cfg.preprocess)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        return create_classifier(self.config.model, info["input_shape"], len(info["classes"]),
                                 activation=self.config.activation, dtype=self.compute_dtype,
                                 rngs=rngs)

    def host_augment(self, info: Mapping[str, Any]):
        if self.config.augment != "crop_flip":
            return None
        return functools.partial(crop_flip, size=info["input_shape"][:2])

    def augment(self, batch: Batch, rng: jax.Array) -> Batch:
        images = to_unit_range(batch["image"])
        if self.config.augment in ("affine", "flip_affine"):
            k_flip, k_affine = jax.random.split(rng)
            if self.config.augment == "flip_affine":
                images = augment.random_flip(images, k_flip)
            images = augment.random_affine(images, k_affine)
        return {**batch, "image": self.config.preprocess.standardize(images)}

    def loss(self, model, batch, rng):
        del rng
        logits = model(batch["image"])
        labels = optax.smooth_labels(jax.nn.one_hot(batch["label"], logits.shape[-1]),
                                     self.config.label_smoothing)
        loss = row_mean(optax.softmax_cross_entropy(logits, labels), batch)
        accuracy = row_mean(jnp.argmax(logits, -1) == batch["label"], batch)
        return loss, {"accuracy": accuracy}

    def eval_step(self, model, batch):
        logits = model(self.config.preprocess.normalize(batch["image"]))
        mask = batch["mask"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        correct = jnp.argmax(logits, -1) == batch["label"]
        return {"count": mask.sum(), "loss": (losses * mask).sum(), "accuracy": (correct * mask).sum()}

    def prepare(self, info, inputs, options) -> list[Prepared]:
        h, w, c = info["input_shape"]
        dark, preprocess = info.get("dark_background", False), self.config.preprocess
        return [Prepared({"image": match_background(as_image(x, c, (h, w), preprocess), dark)})
                for x in inputs]

    def forward(self, model, info, batch):
        return {"logits": model(self.config.preprocess.normalize(batch["image"]))}

    def infer(self, model, info, batch, options):
        logits = self.forward(model, info, batch)["logits"]
        return {"logits": logits, "probabilities": jax.nn.softmax(logits)}

    def to_result(self, info, outputs, prepared, options) -> Classification:
        return Classification(outputs["probabilities"], tuple(info["classes"]), options.top_k)
