"""Semantic segmentation: a U-Net on the shared ResNet backbone, scored by mean IoU."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from zoo.batching import Prepared
from zoo.config import EarlyStoppingConfig, OptimizerConfig, TaskConfig, TrainConfig
from zoo.data.draw import IGNORE
from zoo.data.images import Preprocess, letterboxed_inputs, unletterbox_mask
from zoo.data.scenes import SceneConfig
from zoo.errors import ZooError
from zoo.models import BackboneConfig, UNet, create_backbone
from zoo.models.fpn import FPNSegmenter
from zoo.predictions import SegmentationMask
from zoo.task import Batch, Dataset, Task, masked_mean
from zoo_tasks.segmentation import data
from zoo_tasks.segmentation.metrics import SegmentationMetrics, confusion_matrix


@dataclass(frozen=True)
class SegmentationConfig(TaskConfig):
    model: str = "unet"  # unet (small ResNet encoder) | fcn (ImageNet backbone, FPN, FCN head)
    data: str = "scenes"  # scenes | masks:IMAGES/:MASKS/
    backbone: BackboneConfig = BackboneConfig()  # the encoder
    preprocess: Preprocess = Preprocess()  # mean/std of a pretrained backbone
    image_size: int = 128  # masks: data is letterboxed to this square side
    num_classes: int = 0  # masks: data: labels 0..N-1 (0: the largest label found + 1)
    scenes: SceneConfig = SceneConfig()
    train: TrainConfig = TrainConfig(epochs=5, batch_size=16, eval_batch_size=100)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                                 warmup_epochs=0.3)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=4)

    @classmethod
    def smoke(cls) -> SegmentationConfig:
        return dataclasses.replace(super().smoke(), image_size=32, scenes=SceneConfig.smoke(),
                                   backbone=BackboneConfig(width=8, stages=2))


class SegmentationTask(Task):
    """Labels every pixel with a class; reports test `miou`, per-class IoU, pixel accuracy."""

    name = "segmentation"
    description = ("semantic segmentation (U-Net on the small ResNet, or an FCN head on an "
                   "ImageNet backbone with an FPN) of digit scenes or masks")
    Config = SegmentationConfig
    models = ("unet", "fcn")
    datasets = data.DATASETS
    metric = "miou"
    metric_mode = "max"
    Result = SegmentationMask

    def load_data(self) -> Dataset:
        cfg = self.config
        return data.load(cfg.data, cfg.scenes, cfg.image_size, cfg.num_classes)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        cfg = self.config
        if (cfg.model == "fcn") == (cfg.backbone.name == "resnet"):
            raise ZooError(f"--model {cfg.model} with backbone.name={cfg.backbone.name}: unet "
                           f"takes the small resnet, fcn an ImageNet backbone "
                           f"(--model fcn --set backbone.name=resnet50)")
        if cfg.model == "unet":
            return UNet(info["input_shape"][-1], len(info["classes"]),
                        **cfg.backbone.kwargs(), rngs=rngs)
        backbone = create_backbone(cfg.backbone.name, info["input_shape"],
                                   dtype=self.compute_dtype, rngs=rngs)
        return FPNSegmenter(backbone, len(info["classes"]), width=cfg.backbone.fpn_width,
                            dtype=self.compute_dtype, rngs=rngs)

    def loss(self, model, batch, rng):
        del rng
        ce, valid, _ = _pixel_losses(model, batch, self.config.preprocess)
        if "mask" in batch:  # rows left out: padding, skipped unreadable examples
            valid = valid * batch["mask"][:, None, None]
        return masked_mean(ce, valid), {}

    def eval_step(self, model, batch):
        ce, valid, logits = _pixel_losses(model, batch, self.config.preprocess)
        weights = valid * batch["mask"][:, None, None]
        confusion = confusion_matrix(batch["label"].astype(jnp.int32), jnp.argmax(logits, -1),
                                     weights, logits.shape[-1])
        return {"confusion": confusion, "loss": jnp.sum(ce * weights), "count": jnp.sum(weights)}

    def new_metrics(self, info: Mapping[str, Any]) -> SegmentationMetrics:
        return SegmentationMetrics(len(info["classes"]))

    def prepare(self, info, inputs, options) -> list[Prepared]:
        return letterboxed_inputs(inputs, info)

    def forward(self, model, info, batch):
        return {"logits": model(self.config.preprocess.normalize(batch["image"]))}

    def infer(self, model, info, batch, options):
        logits = self.forward(model, info, batch)["logits"]
        return {"logits": logits, "labels": jnp.argmax(logits, -1).astype(jnp.uint8)}

    def to_result(self, info, outputs, prepared, options) -> SegmentationMask:
        shape, scale, offset = prepared.context
        mask = unletterbox_mask(outputs["labels"], scale, offset, shape)
        return SegmentationMask(mask, tuple(info["classes"]))


def _pixel_losses(model: nnx.Module, batch: Batch, preprocess: Preprocess
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-pixel cross-entropy, the float mask of labelled pixels, and the logits."""
    logits = model(preprocess.normalize(batch["image"]))
    labels = batch["label"].astype(jnp.int32)
    valid = labels != IGNORE
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
    return ce, valid.astype(jnp.float32), logits
