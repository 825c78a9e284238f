"""Object detection: a CenterNet-style detector on the shared ResNet backbone, COCO mAP."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from flax import nnx

from zoo.batching import Prepared
from zoo.config import EarlyStoppingConfig, OptimizerConfig, Range, TaskConfig, TrainConfig
from zoo.data.images import Preprocess, letterboxed_inputs, unletterbox
from zoo.data.scenes import SceneConfig
from zoo.models import BackboneConfig, CenterNet, box_heads, centernet, create_backbone
from zoo.models.centernet import DecodedSteps
from zoo.predictions import Detections
from zoo.task import Batch, Dataset, PredictOptions, Task
from zoo_tasks.detection import data
from zoo_tasks.detection.metrics import DetectionMetrics


@dataclass(frozen=True)
class DetectionConfig(TaskConfig):
    model: str = "centernet"
    data: str = "scenes"  # scenes | coco:ANN.json:IMAGES/
    backbone: BackboneConfig = BackboneConfig()  # an ImageNet one adds an FPN neck
    preprocess: Preprocess = Preprocess()  # mean/std of a pretrained backbone
    level: int = 1  # heads run at backbone stage `level` (stride stem_stride * 2**level; FPN: 4 * 2**level)
    head_width: int = 64  # channels of the shared head convolution
    image_size: int = 128  # coco: images are letterboxed to this square side
    max_detections: int = 32  # detections kept per image (top heatmap peaks)
    nms_iou: float = 0.5  # greedy NMS over the peaks at this IoU (0: peaks only)
    class_agnostic_nms: bool = True  # false where objects of different classes overlap
    size_weight: float = 0.1  # weight of the box-size L1 loss against the heatmap loss
    scenes: SceneConfig = SceneConfig()
    train: TrainConfig = TrainConfig(epochs=8, batch_size=32, eval_batch_size=100)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                                 warmup_epochs=0.3)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=4)

    @classmethod
    def smoke(cls) -> DetectionConfig:
        return dataclasses.replace(super().smoke(), head_width=16, image_size=32,
                                   max_detections=8, scenes=SceneConfig.smoke(),
                                   backbone=BackboneConfig(width=8, stages=2))


@dataclass(frozen=True)
class DetectionOptions(PredictOptions):
    min_score: Annotated[float, Range(0, 1)] = 0.3  # report detections scoring at least this


class DetectionTask(DecodedSteps, Task):
    """Finds and classifies every object; reports test COCO `map`, `map50`, per-class AP."""

    name = "detection"
    description = ("object detection (CenterNet on the small ResNet, or an ImageNet backbone "
                   "with an FPN) of digit scenes or COCO data")
    Config = DetectionConfig
    models = ("centernet",)
    datasets = data.DATASETS
    metric = "map"
    metric_mode = "max"
    PredictOptions = DetectionOptions
    Result = Detections

    def load_data(self) -> Dataset:
        return data.load(self.config.data, self.config.scenes, self.config.image_size)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        cfg = self.config
        heads = box_heads(len(info["classes"]))
        if cfg.backbone.name == "resnet":
            return CenterNet(info["input_shape"][-1], heads, level=cfg.level,
                             head_width=cfg.head_width, **cfg.backbone.kwargs(), rngs=rngs)
        backbone = create_backbone(cfg.backbone.name, info["input_shape"],
                                   dtype=self.compute_dtype, rngs=rngs)
        return CenterNet(info["input_shape"][-1], heads, level=cfg.level,
                         head_width=cfg.head_width, backbone=backbone,
                         fpn_width=cfg.backbone.fpn_width, rngs=rngs)

    def _loss(self, model, batch: Batch, image_weights=None):
        outputs = model(self.config.preprocess.normalize(batch["image"]))
        targets = centernet.encode(batch["boxes"], batch["classes"], batch["box_valid"],
                                   grid=outputs["heatmap"].shape[1:3], stride=model.stride,
                                   num_classes=outputs["heatmap"].shape[-1])
        total, parts = centernet.loss(outputs, targets, size_weight=self.config.size_weight,
                                      image_weights=image_weights)
        return total, parts, outputs

    def _decode(self, model, outputs):
        cfg = self.config
        found = centernet.decode(outputs, stride=model.stride, k=cfg.max_detections,
                                 nms_iou=cfg.nms_iou, class_agnostic=cfg.class_agnostic_nms)
        return {k: found[k] for k in ("boxes", "scores", "classes")}

    def new_metrics(self, info: Mapping[str, Any]) -> DetectionMetrics:
        return DetectionMetrics(len(info["classes"]))

    def prepare(self, info, inputs, options) -> list[Prepared]:
        return letterboxed_inputs(inputs, info)

    def forward(self, model, info, batch):
        return model(self.config.preprocess.normalize(batch["image"]))

    def infer(self, model, info, batch, options):
        outputs = self.forward(model, info, batch)
        return {**outputs, **self._decode(model, outputs)}

    def to_result(self, info, outputs, prepared, options) -> Detections:
        (h, w), scale, offset = prepared.context
        keep = outputs["scores"] >= options.min_score
        boxes = unletterbox(outputs["boxes"][keep], scale, offset)
        return Detections(np.clip(boxes, 0, np.array([w, h, w, h], np.float32)),
                          outputs["scores"][keep], outputs["classes"][keep],
                          tuple(info["classes"]))
