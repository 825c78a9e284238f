"""Face attributes: several independent yes/no labels per image (CelebA style).

A ResNet with one sigmoid output per attribute, trained with binary cross-entropy;
scored by average precision per attribute and its mean (threshold-free), and by accuracy
and F1 at per-attribute thresholds chosen on validation. Those thresholds live in the
model (`Thresholds` variables, saved with checkpoints and published weights), so `zoo
eval` and `zoo predict` decide exactly as validation chose.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.config import EarlyStoppingConfig, OptimizerConfig, Positive, Range, TaskConfig, TrainConfig
from zoo.data.augment import FlipAffine, flip_and_affine
from zoo.data.faces import FaceConfig
from zoo.data.images import load_centre_square, to_unit_range
from zoo.data.scoring import Goal
from zoo.models import BackboneConfig, MultiLabelNet
from zoo.task import Batch, Dataset, Task
from zoo_tasks.attributes import data
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


class AttributesTask(Task):
    """Predicts every attribute of a face; reports test `mean_ap`, accuracy and F1."""

    name = "attributes"
    description = "face attributes: one yes/no per attribute (ResNet, sigmoid), CelebA layout"
    Config = AttributesConfig
    models = ("resnet",)
    datasets = data.DATASETS
    metric = "mean_ap"
    metric_mode = "max"

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

    @classmethod
    def add_predict_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IMAGE",
                            help="face images (centre-cropped like the training data)")
        parser.add_argument("--sort", action="store_true",
                            help="list attributes by probability, most likely first")
        parser.add_argument("--json", action="store_true", help="print JSON instead of text")

    def predict(self, model, info, args) -> str:
        size = info["input_shape"][0]
        images = np.stack([load_centre_square(p, size, info["crop"]) for p in args.inputs])
        results = read_attributes(model, info, images, args.inputs)
        if args.json:
            return json.dumps([r.to_json() for r in results], indent=2)
        return "\n".join(r.format(sort=args.sort) for r in results)


@dataclass(frozen=True)
class AttributeReading:
    """One attribute of one image: its probability and the model's threshold for it."""

    name: str
    probability: float
    threshold: float

    @property
    def present(self) -> bool:
        return self.probability >= self.threshold


@dataclass(frozen=True)
class AttributePrediction:
    """Every attribute of one image, in the model's order."""

    source: str
    readings: tuple[AttributeReading, ...]

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source,
                "attributes": [{**dataclasses.asdict(r), "present": r.present}
                               for r in self.readings]}

    def format(self, *, sort: bool = False) -> str:
        """The deck's listing: one line per attribute, its probability, yes or no."""
        readings = sorted(self.readings, key=lambda r: -r.probability) if sort else self.readings
        width = max(len(r.name) for r in readings)
        lines = [f"{r.name:<{width}}  {r.probability:.3f}  {'yes' if r.present else 'no ':3}"
                 f"  (threshold {r.threshold:.2f})" for r in readings]
        return "\n".join([f"{self.source}:", *("  " + line for line in lines)])


def read_attributes(model: nnx.Module, info: Mapping[str, Any], images: np.ndarray,
                    sources: list[str]) -> list[AttributePrediction]:
    """Attribute probabilities and decisions for uint8 images (N, S, S, 3) read like
    the training data."""
    probs = np.asarray(jax.nn.sigmoid(model(to_unit_range(jnp.asarray(images)))))
    thresholds = np.asarray(model.thresholds[...])
    return [AttributePrediction(source, tuple(
                AttributeReading(name, float(p[i]), float(thresholds[i]))
                for i, name in enumerate(info["attributes"])))
            for source, p in zip(sources, probs)]
