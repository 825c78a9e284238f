"""Face attributes: several independent yes/no labels per image (CelebA style).

A ResNet with one sigmoid output per attribute, trained with binary cross-entropy;
scored by average precision per attribute and its mean (threshold-free), and by accuracy
and F1 at per-attribute thresholds chosen on validation. Those thresholds live in the
model (`Thresholds` variables, saved with checkpoints and published weights), so `zoo
eval` and `zoo predict` decide exactly as validation chose.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from zoo.batching import Prepared
from zoo.config import EarlyStoppingConfig, OptimizerConfig, Positive, Range, TaskConfig, TrainConfig
from zoo.data.augment import FlipAffine, flip_and_affine
from zoo.data.faces import FaceConfig
from zoo.data.images import load_centre_square, to_unit_range
from zoo.data.scoring import Goal
from zoo.models import BackboneConfig, MultiLabelNet
from zoo.task import Batch, Dataset, PredictOptions, Task
from zoo_tasks.attributes import data
from zoo_tasks.attributes.results import Attributes
from zoo_tasks.attributes.metrics import AttributeMetrics


@dataclass(frozen=True)
class AttributesConfig(TaskConfig):
    model: str = "resnet"
    data: str = "faces"  # faces | celeba:ROOT
    backbone: BackboneConfig = BackboneConfig(width=16, stages=4, blocks=1, stem_stride=2)
    image_size: Positive = 48  # square side the images are drawn at or resized to
    crop: Annotated[float, Range(0.05, 1.0)] = 1.0  # celeba: centre square kept, as a fraction of the shorter side
    faces: FaceConfig = FaceConfig()
    augment: FlipAffine = "flip"  # attributes are left-right symmetric
    threshold_goal: Goal = "f1"  # what the per-attribute thresholds maximise on validation
    train: TrainConfig = TrainConfig(epochs=10, batch_size=64, eval_batch_size=200)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                                 warmup_epochs=0.5)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=4)

    @classmethod
    def smoke(cls) -> AttributesConfig:
        """Small faces and net: a few seconds of training (after compiling), enough to
        beat chance. Few epochs of more photos: each epoch also validates and saves."""
        base = super().smoke()
        return dataclasses.replace(base, image_size=24, faces=FaceConfig.smoke(),
                                   backbone=BackboneConfig(width=8, stages=2, stem_stride=2),
                                   optimizer=dataclasses.replace(base.optimizer, lr=0.01),
                                   train=dataclasses.replace(base.train, epochs=6,
                                                             max_examples=0))


@dataclass(frozen=True)
class AttributesOptions(PredictOptions):
    sort: bool = False  # list attributes by probability, most likely first


class AttributesTask(Task):
    """Predicts every attribute of a face; reports test `mean_ap`, accuracy and F1."""

    name = "attributes"
    description = "face attributes: one yes/no per attribute (ResNet, sigmoid), CelebA layout"
    Config = AttributesConfig
    models = ("resnet",)
    datasets = data.DATASETS
    metric = "mean_ap"
    metric_mode = "max"
    PredictOptions = AttributesOptions
    Result = Attributes

    def load_data(self) -> Dataset:
        cfg = self.config
        return data.load(cfg.data, cfg.faces, cfg.image_size, cfg.crop)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        return MultiLabelNet(info["input_shape"][-1], len(info["attributes"]),
                             backbone=self.config.backbone.kwargs(), dtype=self.compute_dtype,
                             rngs=rngs)

    def augment(self, batch: Batch, rng: jax.Array) -> Batch:
        images = flip_and_affine(to_unit_range(batch["image"]), rng, self.config.augment)
        return {**batch, "image": images}

    def loss(self, model, batch, rng):
        del rng
        logits = model(batch["image"])
        losses = optax.sigmoid_binary_cross_entropy(logits, batch["attributes"].astype(jnp.float32))
        correct = (logits > 0) == (batch["attributes"] > 0)
        return losses.mean(), {"accuracy": correct.mean()}

    def eval_step(self, model, batch):
        logits = model(to_unit_range(batch["image"]))
        labels = batch["attributes"].astype(jnp.float32)
        losses = optax.sigmoid_binary_cross_entropy(logits, labels).mean(-1)
        probs = jax.nn.sigmoid(logits)
        return {"probability": probs, "threshold": jnp.broadcast_to(model.thresholds[...], probs.shape),
                "loss": jnp.sum(losses * batch["mask"]), "count": jnp.sum(batch["mask"])}

    def new_metrics(self, info: Mapping[str, Any]) -> AttributeMetrics:
        return AttributeMetrics(info["attributes"])

    def calibrate(self, model: nnx.Module, metrics: AttributeMetrics) -> bool:
        model.thresholds[...] = jnp.asarray(metrics.choose_thresholds(self.config.threshold_goal))
        return True

    def prepare(self, info, inputs, options) -> list[Prepared]:
        size = info["input_shape"][0]
        return [Prepared({"image": load_centre_square(x, size, info["crop"])}) for x in inputs]

    def forward(self, model, info, batch):
        return {"logits": model(to_unit_range(batch["image"]))}

    def infer(self, model, info, batch, options):
        probabilities = jax.nn.sigmoid(self.forward(model, info, batch)["logits"])
        return {"probabilities": probabilities,
                "thresholds": jnp.broadcast_to(model.thresholds[...], probabilities.shape)}

    def to_result(self, info, outputs, prepared, options) -> Attributes:
        return Attributes(tuple(info["attributes"]), outputs["probabilities"],
                          outputs["thresholds"], options.sort)
