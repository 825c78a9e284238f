"""Multi-person pose estimation: CenterNet-style keypoints on the shared ResNet backbone,
scored by COCO keypoint AP."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from flax import nnx

from zoo.batching import Prepared
from zoo.config import (EarlyStoppingConfig, NonNegativeFloat, OptimizerConfig, Positive, Range,
                        TaskConfig, TrainConfig)
from zoo.data.images import letterboxed_inputs, to_unit_range
from zoo.models import BackboneConfig, CenterNet
from zoo.task import Batch, Dataset, PredictOptions, Task
from zoo.models.centernet import DecodedSteps
from zoo_tasks.pose import centernet, data
from zoo_tasks.pose.augment import random_flip
from zoo_tasks.pose.figures import FigureConfig
from zoo_tasks.pose.metrics import PoseMetrics
from zoo_tasks.pose.results import Poses, to_poses
from zoo_tasks.pose.skeleton import Skeleton

Fraction = Annotated[float, Range(0, 1)]


@dataclass(frozen=True)
class PoseConfig(TaskConfig):
    model: str = "centernet"
    data: str = "figures"  # figures | coco-keypoints:ANN.json:IMAGES/
    backbone: BackboneConfig = BackboneConfig()
    level: int = 1  # heads run at backbone stage `level`: stride stem_stride * 2**level
    head_width: int = 128  # channels of the shared head convolution
    image_size: int = 128  # coco-keypoints: images are letterboxed to this square side
    sigmas: tuple[float, ...] = ()  # OKS sigma per keypoint (empty: COCO's, for its 17 joints)
    max_people: Positive = 20  # people decoded per image (COCO's keypoint AP scores 20)
    min_joint_score: Fraction = 0.1  # a joint heatmap peak this confident may place a joint
    snap_distance: Fraction = 0.3  # ... if within this fraction of the person's size
    joint_weight: NonNegativeFloat = 1.0  # weight of the joint-displacement L1 loss
    flip: bool = True  # mirror half the training images, swapping left and right joints
    figures: FigureConfig = FigureConfig()
    train: TrainConfig = TrainConfig(epochs=12, batch_size=32, eval_batch_size=100)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                                 warmup_epochs=0.3)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=4)

    @classmethod
    def smoke(cls) -> PoseConfig:
        """Small and quick to compile; a constant learning rate keeps the step count out
        of the compiled steps, so a test may train it longer on other figures of the same
        shapes and reuse the programs from the compilation cache."""
        return dataclasses.replace(super().smoke(), head_width=16, image_size=32, level=1,
                                   max_people=4, figures=FigureConfig.smoke(),
                                   backbone=BackboneConfig(width=8, stages=2),
                                   optimizer=OptimizerConfig(name="adam", lr=3e-3,
                                                             schedule="constant"))


@dataclass(frozen=True)
class PoseOptions(PredictOptions):
    min_score: Fraction = 0.3  # report and draw people scoring at least this


class PoseTask(DecodedSteps, Task):
    """Finds every person and their joints; reports test keypoint `ap`, `ap50`, `ap75`."""

    name = "pose"
    description = "multi-person keypoints (CenterNet on the ResNet backbone) of stick figures or COCO"
    Config = PoseConfig
    models = ("centernet",)
    datasets = data.DATASETS
    metric = "ap"
    metric_mode = "max"
    PredictOptions = PoseOptions
    Result = Poses

    def load_data(self) -> Dataset:
        cfg = self.config
        return data.load(cfg.data, cfg.figures, cfg.image_size, cfg.sigmas)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        """The model for `info`'s skeleton; also keeps that skeleton, which the compiled
        steps need (left/right pairs to flip, sigmas for the heatmaps) and which the
        harness always builds a model from before it traces them."""
        cfg = self.config
        self.skeleton = Skeleton.from_info(info)
        return CenterNet(info["input_shape"][-1], centernet.heads(self.skeleton.num_joints),
                         heatmaps=centernet.HEATMAPS, level=cfg.level,
                         head_width=cfg.head_width, **cfg.backbone.kwargs(), rngs=rngs)

    def augment(self, batch: Batch, rng) -> Batch:
        return random_flip(batch, rng, self.skeleton.flip_index) if self.config.flip else batch

    def _loss(self, model, batch: Batch, image_weights=None):
        outputs = self.forward(model, {}, batch)
        targets = centernet.encode(batch["keypoints"], batch["boxes"], batch["person_valid"],
                                   grid=outputs["centre"].shape[1:3], stride=model.stride)
        total, parts = centernet.loss(outputs, targets, joint_weight=self.config.joint_weight,
                                      image_weights=image_weights)
        return total, parts, outputs

    def forward(self, model, info, batch):
        """The heads' outputs: what training's loss, eval and predict all decode."""
        return model(to_unit_range(batch["image"]))

    def _decode(self, model, outputs):
        cfg = self.config
        return centernet.decode(outputs, stride=model.stride, people=cfg.max_people,
                                min_joint_score=cfg.min_joint_score,
                                snap_distance=cfg.snap_distance)

    def new_metrics(self, info: Mapping[str, Any]) -> PoseMetrics:
        return PoseMetrics(Skeleton.from_info(info).sigmas)

    def prepare(self, info, inputs, options) -> list[Prepared]:
        return letterboxed_inputs(inputs, info)

    def infer(self, model, info, batch, options):
        return self._decode(model, self.forward(model, info, batch))

    def to_result(self, info, outputs, prepared, options) -> Poses:
        _, scale, offset = prepared.context
        return to_poses(outputs, scale, offset, Skeleton.from_info(info), options.min_score)
