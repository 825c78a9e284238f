"""Semantic segmentation: a U-Net on the shared ResNet backbone, scored by mean IoU."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.config import EarlyStoppingConfig, OptimizerConfig, TaskConfig, TrainConfig
from zoo.data.draw import IGNORE, overlay_mask, save_label_png
from zoo.data.images import letterboxed_input, output_paths, to_unit_range, unletterbox_mask
from zoo.data.scenes import SceneConfig
from zoo.models import BackboneConfig, UNet
from zoo.task import Batch, Dataset, Task, masked_mean
from zoo_tasks.segmentation import data
from zoo_tasks.segmentation.metrics import SegmentationMetrics, confusion_matrix


@dataclass(frozen=True)
class SegmentationConfig(TaskConfig):
    model: str = "unet"
    data: str = "scenes"  # scenes | masks:IMAGES/:MASKS/
    backbone: BackboneConfig = BackboneConfig()  # the U-Net's encoder
    image_size: int = 128  # masks: data is letterboxed to this square side
    num_classes: int = 0  # masks: data: labels 0..N-1 (0: the largest label found + 1)
    scenes: SceneConfig = SceneConfig()
    train: TrainConfig = TrainConfig(epochs=12, batch_size=16, eval_batch_size=100)
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
    description = "semantic segmentation (U-Net on the ResNet backbone) of digit scenes or masks"
    Config = SegmentationConfig
    models = ("unet",)
    datasets = data.DATASETS
    metric = "miou"
    metric_mode = "max"

    def load_data(self) -> Dataset:
        cfg = self.config
        return data.load(cfg.data, cfg.scenes, cfg.image_size, cfg.num_classes)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        return UNet(info["input_shape"][-1], len(info["classes"]),
                    **self.config.backbone.kwargs(), rngs=rngs)

    def loss(self, model, batch, rng):
        del rng
        ce, valid, _ = _pixel_losses(model, batch)
        return masked_mean(ce, valid), {}

    def eval_step(self, model, batch):
        ce, valid, logits = _pixel_losses(model, batch)
        weights = valid * batch["mask"][:, None, None]
        confusion = confusion_matrix(batch["label"].astype(jnp.int32), jnp.argmax(logits, -1),
                                     weights, logits.shape[-1])
        return {"confusion": confusion, "loss": jnp.sum(ce * weights), "count": jnp.sum(weights)}

    def new_metrics(self, info: Mapping[str, Any]) -> SegmentationMetrics:
        return SegmentationMetrics(len(info["classes"]))

    @classmethod
    def add_predict_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IMAGE",
                            help="image files (any size or mode)")
        parser.add_argument("--out", help="colour overlay PNG (a directory for several images)")
        parser.add_argument("--mask-out", help="class-index mask PNG, palette mode (a directory "
                                               "for several images)")

    def predict(self, model, info, args) -> str:
        size, _, c = info["input_shape"]
        overlays = output_paths(args.inputs, args.out, "-overlay.png") if args.out else None
        masks = output_paths(args.inputs, args.mask_out, "-mask.png") if args.mask_out else None
        dark, lines = info.get("dark_background", False), []
        for i, path in enumerate(args.inputs):
            image, batch, scale, offset = letterboxed_input(path, size, c, dark)
            labels = np.asarray(jnp.argmax(model(batch), -1)[0])
            labels = unletterbox_mask(labels.astype(np.uint8), scale, offset, image.shape[:2])
            counts = np.bincount(labels.ravel(), minlength=len(info["classes"]))
            found = [f"{info['classes'][k]} {counts[k] / labels.size:.1%}"
                     for k in np.argsort(-counts) if k != 0 and counts[k]]
            lines.append(f"{path}: {', '.join(found) or 'background only'}")
            if overlays:
                overlay_mask(image, labels).save(overlays[i])
                lines[-1] += f" -> {overlays[i]}"
            if masks:
                save_label_png(masks[i], labels)
                lines[-1] += f" (mask {masks[i]})"
        return "\n".join(lines)


def _pixel_losses(model: nnx.Module, batch: Batch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-pixel cross-entropy, the float mask of labelled pixels, and the logits."""
    logits = model(to_unit_range(batch["image"]))
    labels = batch["label"].astype(jnp.int32)
    valid = labels != IGNORE
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
    return ce, valid.astype(jnp.float32), logits
