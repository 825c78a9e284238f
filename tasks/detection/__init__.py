"""Object detection: a CenterNet-style detector on the shared ResNet backbone, COCO mAP."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from flax import nnx

from zoo.config import (EarlyStoppingConfig, OptimizerConfig, Range, TaskConfig, TrainConfig,
                        bounded)
from zoo.data.draw import draw_boxes
from zoo.data.images import letterboxed_input, output_paths, to_unit_range, unletterbox
from zoo.data.scenes import SceneConfig
from zoo.models import BackboneConfig, CenterNet, centernet
from zoo.task import Batch, Dataset, Task
from zoo_tasks.detection import data
from zoo_tasks.detection.metrics import DetectionMetrics


@dataclass(frozen=True)
class DetectionConfig(TaskConfig):
    model: str = "centernet"
    data: str = "scenes"  # scenes | coco:ANN.json:IMAGES/
    backbone: BackboneConfig = BackboneConfig()
    level: int = 1  # heads run at backbone stage `level`: stride stem_stride * 2**level
    head_width: int = 64  # channels of the shared head convolution
    image_size: int = 128  # coco: images are letterboxed to this square side
    max_detections: int = 32  # detections kept per image (top heatmap peaks)
    nms_iou: float = 0.5  # greedy NMS over the peaks at this IoU (0: peaks only)
    class_agnostic_nms: bool = True  # false where objects of different classes overlap
    size_weight: float = 0.1  # weight of the box-size L1 loss against the heatmap loss
    scenes: SceneConfig = SceneConfig()
    train: TrainConfig = TrainConfig(epochs=12, batch_size=32, eval_batch_size=100)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                                 warmup_epochs=0.3)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=4)

    @classmethod
    def smoke(cls) -> DetectionConfig:
        return dataclasses.replace(super().smoke(), head_width=16, image_size=32,
                                   max_detections=8, scenes=SceneConfig.smoke(),
                                   backbone=BackboneConfig(width=8, stages=2))


class DetectionTask(Task):
    """Finds and classifies every object; reports test COCO `map`, `map50`, per-class AP."""

    name = "detection"
    description = "object detection (CenterNet on the ResNet backbone) of digit scenes or COCO data"
    Config = DetectionConfig
    models = ("centernet",)
    datasets = data.DATASETS
    metric = "map"
    metric_mode = "max"

    def load_data(self) -> Dataset:
        return data.load(self.config.data, self.config.scenes, self.config.image_size)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        cfg = self.config
        return CenterNet(info["input_shape"][-1], len(info["classes"]), level=cfg.level,
                         head_width=cfg.head_width, **cfg.backbone.kwargs(), rngs=rngs)

    def loss(self, model, batch, rng):
        del rng
        return self._loss(model, batch)[:2]

    def eval_step(self, model, batch):
        total, _, outputs = self._loss(model, batch, batch["mask"])
        count = batch["mask"].sum()
        return {"loss": total * count, "count": count, **self._decode(model, outputs)}

    def _loss(self, model, batch: Batch, image_weights=None):
        outputs = model(to_unit_range(batch["image"]))
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

    @classmethod
    def add_predict_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IMAGE",
                            help="image files (any size or mode)")
        parser.add_argument("--out",
                            help="PNG with the boxes drawn (a directory for several images)")
        parser.add_argument("--min-score", type=bounded(float, Range(0, 1)), default=0.3,
                            help="print and draw detections scoring at least this (default 0.3)")

    def predict(self, model, info, args) -> str:
        size, _, c = info["input_shape"]
        drawings = output_paths(args.inputs, args.out, "-boxes.png") if args.out else None
        results = []
        for i, path in enumerate(args.inputs):
            image, batch, scale, offset = letterboxed_input(path, size, c,
                                                            info.get("dark_background", False))
            found = {k: np.asarray(v[0]) for k, v in self._decode(model, model(batch)).items()}
            keep = found["scores"] >= args.min_score
            boxes = unletterbox(found["boxes"][keep], scale, offset)
            boxes = np.clip(boxes, 0, np.tile([image.shape[1], image.shape[0]], 2))
            names = [info["classes"][k] for k in found["classes"][keep]]
            scores = found["scores"][keep]
            results.append({"image": str(path), "detections": [
                {"label": n, "score": round(float(s), 4), "box": [round(float(v), 1) for v in b]}
                for n, s, b in zip(names, scores, boxes)]})
            if drawings:
                captions = [f"{n} {s:.2f}" for n, s in zip(names, scores)]
                draw_boxes(image, boxes, found["classes"][keep], captions).save(drawings[i])
                results[-1]["drawing"] = str(drawings[i])
        return json.dumps(results, indent=2)
