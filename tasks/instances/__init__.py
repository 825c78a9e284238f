"""Instance segmentation: CondInst (CenterNet plus dynamic mask heads) on the shared ResNet
backbone; one box, class and pixel mask per object, scored by COCO mask and box AP."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import jax.numpy as jnp
from flax import nnx

from zoo.config import (EarlyStoppingConfig, NonNegativeFloat, OptimizerConfig, Positive, Range,
                        TaskConfig, TrainConfig)
from zoo.batching import Prepared
from zoo.data.images import letterboxed_inputs, to_unit_range
from zoo.data.instance_scenes import InstanceSceneConfig
from zoo.models import BackboneConfig, CondInst
from zoo.models.centernet import DecodedSteps
from zoo.task import Batch, Dataset, PredictOptions, Task
from zoo_tasks.instances import data, masks
from zoo_tasks.instances.metrics import InstanceMetrics
from zoo_tasks.instances.predict import InstancePrediction, to_prediction

__all__ = ["InstancePrediction", "InstancesConfig", "InstancesTask"]


@dataclass(frozen=True)
class InstancesConfig(TaskConfig):
    model: str = "condinst"
    data: str = "scenes"  # scenes | coco:ANN.json:IMAGES/
    backbone: BackboneConfig = BackboneConfig()
    level: int = 1  # heads run at backbone stage `level`: stride stem_stride * 2**level
    head_width: Positive = 64  # channels of the shared head convolution
    mask_channels: Positive = 8  # head features brought to input resolution for the mask networks
    mask_hidden: Positive = 8  # channels between the mask networks' 1x1 convolutions
    mask_layers: Annotated[int, Range(2)] = 3  # 1x1 convolutions per mask network
    image_size: Positive = 128  # coco: images are letterboxed to this square side
    max_detections: Positive = 16  # objects kept per image (top heatmap peaks)
    nms_iou: Annotated[float, Range(0, 1)] = 0.5  # greedy box NMS over the peaks (0: peaks only)
    # evaluation NMS per class: a digit's second-likeliest class at its centre survives as a
    # lower-scored object, which AP counts when the first guess is wrong (class-agnostic NMS
    # removes it: mask AP50 0.841 against 0.880 with the same weights); predict always
    # suppresses across classes, so that each object is drawn once with its likeliest class
    class_agnostic_nms: bool = False
    size_weight: NonNegativeFloat = 0.1  # weight of the box-size L1 loss
    mask_weight: NonNegativeFloat = 1.0  # weight of the masks' Dice loss
    scenes: InstanceSceneConfig = InstanceSceneConfig()
    train: TrainConfig = TrainConfig(epochs=8, batch_size=32, eval_batch_size=64)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                                 warmup_epochs=0.3)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=4)

    @classmethod
    def smoke(cls) -> InstancesConfig:
        return dataclasses.replace(super().smoke(), head_width=16, image_size=32,
                                   max_detections=6, scenes=InstanceSceneConfig.smoke(),
                                   backbone=BackboneConfig(width=8, stages=2))


@dataclass(frozen=True)
class InstancesOptions(PredictOptions):
    min_score: Annotated[float, Range(0, 1)] = 0.3  # report objects scoring at least this


class InstancesTask(DecodedSteps, Task):
    """Finds every object with its own mask; reports test COCO `mask_ap`, `mask_ap50`,
    `box_ap`, `box_ap50` and per-class AP."""

    name = "instances"
    description = ("instance segmentation (CondInst: CenterNet + dynamic mask heads) of "
                   "touching digit scenes or COCO data")
    Config = InstancesConfig
    models = ("condinst",)
    datasets = data.DATASETS
    metric = "mask_ap"
    metric_mode = "max"
    PredictOptions = InstancesOptions
    Result = InstancePrediction

    def load_data(self) -> Dataset:
        return data.load(self.config.data, self.config.scenes, self.config.image_size)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        cfg = self.config
        return CondInst(info["input_shape"][-1], len(info["classes"]), level=cfg.level,
                        head_width=cfg.head_width, mask_channels=cfg.mask_channels,
                        mask_hidden=cfg.mask_hidden, mask_layers=cfg.mask_layers,
                        **cfg.backbone.kwargs(), rngs=rngs)

    def eval_step(self, model, batch):
        found = super().eval_step(model, batch)
        logits = found.pop("mask_logits")
        return {**found, "masks": (logits > 0).astype(jnp.uint8)}

    def _loss(self, model, batch: Batch, image_weights=None):
        outputs = model(to_unit_range(batch["image"]))
        total, parts = masks.loss(model, outputs, batch, size_weight=self.config.size_weight,
                                  mask_weight=self.config.mask_weight,
                                  image_weights=image_weights)
        return total, parts, outputs

    def _decode(self, model, outputs, *, class_agnostic: bool | None = None):
        cfg = self.config
        if class_agnostic is None:
            class_agnostic = cfg.class_agnostic_nms
        return masks.decode(model, outputs, k=cfg.max_detections, nms_iou=cfg.nms_iou,
                            class_agnostic=class_agnostic)

    def new_metrics(self, info: Mapping[str, Any]) -> InstanceMetrics:
        return InstanceMetrics(len(info["classes"]))

    def prepare(self, info, inputs, options) -> list[Prepared]:
        return letterboxed_inputs(inputs, info)

    def forward(self, model, info, batch):
        return model(to_unit_range(batch["image"]))

    def infer(self, model, info, batch, options):
        return self._decode(model, self.forward(model, info, batch), class_agnostic=True)

    def to_result(self, info, outputs, prepared, options) -> InstancePrediction:
        return to_prediction(outputs, prepared.context, info["classes"],
                             min_score=options.min_score)
