"""Face verification: are two photos of the same person? Judged on people never seen.

An embedding network (ResNet, projection, batch norm, unit length) is trained to
classify the training people with an additive angular margin (ArcFace: the true class's
logit is s * cos(theta + m)), or with a plain softmax layer for comparison
(`--set loss=softmax`). The class layer is then dropped: two photos are compared by the
cosine similarity of their embeddings. Scored with the LFW protocol on pairs of unseen
people: 10-fold accuracy (threshold chosen on the other nine folds), TAR at FAR 1e-3 and
ROC AUC. The similarity threshold `zoo predict` uses is chosen on the validation pairs
and saved in the model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.batching import Prepared
from zoo.config import (EarlyStoppingConfig, OptimizerConfig, Positive, Range, TaskConfig,
                        TrainConfig)
from zoo.data.augment import FlipAffine, flip_and_affine
from zoo.data.faces import FaceConfig
from zoo.data.images import load_centre_square, to_unit_range
from zoo.models import BackboneConfig, EmbeddingNet, arcface_logits
from zoo.task import Batch, Dataset, PredictOptions, Task
from zoo_tasks.verification import data
from zoo_tasks.verification.protocol import PairMetrics
from zoo_tasks.verification.results import Embedding


@dataclass(frozen=True)
class VerificationConfig(TaskConfig):
    model: str = "resnet"
    data: str = "faces"  # faces | lfw:ROOT | folder:PATH
    loss: Literal["arcface", "softmax"] = "arcface"  # softmax: a plain linear layer, no margin
    scale: Annotated[float, Range(1.0, 128.0)] = 16.0  # arcface: s, the logits' radius
    margin: Annotated[float, Range(0.0, 1.5)] = 0.3  # arcface: m, radians added to the true class's angle
    embedding_dim: Positive = 64
    backbone: BackboneConfig = BackboneConfig(width=16, stages=4, blocks=1, stem_stride=2)
    image_size: Positive = 32  # square side the images are drawn at or resized to
    crop: Annotated[float, Range(0.0, 1.0)] = 0.0  # centre square kept, of the shorter side (0: faces/folder 1.0, lfw 0.6)
    train_folder: str = ""  # PATH: train on these people (one sub-folder each) instead
    faces: FaceConfig = FaceConfig(train=1500, val=200, test=300, photos=6)
    augment: FlipAffine = "flip"
    train: TrainConfig = TrainConfig(epochs=12, batch_size=64, eval_batch_size=200)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                                 warmup_epochs=0.5)
    # the cosine schedule runs to its end; the epoch with the best val accuracy is kept
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=0)

    @classmethod
    def smoke(cls) -> VerificationConfig:
        """Small faces: a few seconds of training (after compiling), enough to beat
        chance on unseen people. A wider, deeper net than attributes' smoke: at width 8
        and 2 stages, 6 epochs left test AUC near 0.7."""
        base = super().smoke()
        return dataclasses.replace(base, image_size=24, faces=FaceConfig.smoke(),
                                   backbone=BackboneConfig(width=16, stages=3, stem_stride=2),
                                   optimizer=dataclasses.replace(base.optimizer, lr=0.01),
                                   train=dataclasses.replace(base.train, epochs=6,
                                                             max_examples=0))


@dataclass(frozen=True)
class VerificationOptions(PredictOptions):
    threshold: Annotated[float | None, Range(-1.0, 1.0)] = None  # same person at this similarity or more (default: the model's)


class VerificationTask(Task):
    """Embeds faces; reports the LFW protocol's test `accuracy` on pairs of unseen people."""

    name = "verification"
    description = "face verification: ArcFace embeddings judged on pairs of unseen people (LFW protocol)"
    Config = VerificationConfig
    models = ("resnet",)
    datasets = data.DATASETS
    metric = "accuracy"
    metric_mode = "max"
    PredictOptions = VerificationOptions
    Result = Embedding

    def load_data(self) -> Dataset:
        cfg = self.config
        return data.load(cfg.data, cfg.faces, cfg.image_size, cfg.crop, cfg.train_folder)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        cfg = self.config
        return EmbeddingNet(info["input_shape"][-1], cfg.embedding_dim, info["identities"],
                            classifier="cosine" if cfg.loss == "arcface" else "linear",
                            backbone=cfg.backbone.kwargs(), dtype=self.compute_dtype, rngs=rngs)

    def augment(self, batch: Batch, rng: jax.Array) -> Batch:
        images = flip_and_affine(to_unit_range(batch["image"]), rng, self.config.augment)
        return {**batch, "image": images}

    def loss(self, model, batch, rng):
        del rng
        scores = model.classify(model.features(batch["image"]))
        labels = batch["identity"]
        logits = scores
        if self.config.loss == "arcface":
            logits = arcface_logits(scores, labels, scale=self.config.scale,
                                    margin=self.config.margin)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, {"accuracy": jnp.mean(jnp.argmax(scores, -1) == labels)}

    def eval_step(self, model, batch):
        n = batch["image_a"].shape[0]
        both = model.embed(to_unit_range(jnp.concatenate([batch["image_a"], batch["image_b"]])))
        similarity = jnp.sum(both[:n] * both[n:], axis=-1)
        return {"similarity": similarity,
                "threshold": jnp.broadcast_to(model.threshold[...], similarity.shape)}

    def new_metrics(self, info: Mapping[str, Any]) -> PairMetrics:
        return PairMetrics()

    def calibrate(self, model: nnx.Module, metrics: PairMetrics) -> bool:
        model.threshold[...] = jnp.asarray(metrics.choose_threshold(), jnp.float32)
        return True

    def prepare(self, info, inputs, options) -> list[Prepared]:
        size = info["input_shape"][0]
        return [Prepared({"image": load_centre_square(x, size, info["crop"])}) for x in inputs]

    def forward(self, model, info, batch):
        return {"embedding": model.embed(to_unit_range(batch["image"]))}

    def infer(self, model, info, batch, options):
        embedding = self.forward(model, info, batch)["embedding"]
        return {"embedding": embedding,
                "threshold": jnp.broadcast_to(model.threshold[...], embedding.shape[:1])}

    def to_result(self, info, outputs, prepared, options) -> Embedding:
        threshold = outputs["threshold"] if options.threshold is None else options.threshold
        return Embedding(np.asarray(outputs["embedding"], np.float32), float(threshold))
