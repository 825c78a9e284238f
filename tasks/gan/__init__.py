"""DCGAN on digits, plain or class-conditional, with its sample quality measured.

Both networks train in one compiled step on the ordinary harness (checkpoints, resume,
early stopping on the validation Frechet distance, logs, devices). Quality is measured
by a judge: a trained LeNet classifier, by default the published
`classification/lenet:mnist-sample` (`judge.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from zoo.batching import Prepared
from zoo.config import (EarlyStoppingConfig, NonNegative, OptimizerConfig, Positive, Range,
                        TaskConfig, TrainConfig)
from zoo.data.image_sets import IMAGE_SETS, load_image_set
from zoo.data.images import to_unit_range
from zoo.data.sources import with_arrays
from zoo.errors import ZooError
from zoo.models.copies import update_average
from zoo.predictions import GeneratedImage
from zoo.task import Batch, Dataset, PredictOptions, Task
from zoo_tasks.gan import judge, steps
from zoo_tasks.gan.grid import save_grid
from zoo_tasks.gan.model import GAN
from zoo_tasks.gan.quality import QualityMetrics

CONDITIONAL = {"dcgan": False, "cdcgan": True}  # model name -> class-conditional
MODEL_EPOCHS = {"dcgan": 60}  # models that train longer than GanConfig.train.epochs by default
EVAL_NOISE_SEED = 7  # fixed noise for the val/test samples: comparable across runs and seeds
GRID_SEED = 11  # fixed noise for the per-epoch sample grid: watch the same samples improve
GRID_ROWS = 8
_sample = nnx.jit(GAN.sample)  # the per-epoch grid: one compiled call, not an op-by-op pass


@dataclass(frozen=True)
class GanConfig(TaskConfig):
    model: str = "cdcgan"  # dcgan | cdcgan (class-conditional)
    data: str = "mnist-sample"  # mnist-sample | mnist | folder:PATH (sides >= 16, divisible by 4)
    image_size: NonNegative = 0  # resize to this square size (0: the data set's own)
    channels: NonNegative = 0  # 1 grey or 3 colour (0: the data set's own)
    latent_dim: Positive = 64  # noise dimensions
    width: Positive = 32  # channels of the generator's last and the discriminator's first layer
    ema_decay: Annotated[float, Range(0, 1)] = 0.999  # generator weight averaging; samples and metrics use the average
    judge: str = "classification/lenet:mnist-sample"  # LeNet measuring samples: hub TASK/MODEL:TAG or a classification workdir
    train: TrainConfig = TrainConfig(epochs=30, batch_size=64, log_every=20)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3, momentum=0.5,
                                                 schedule="constant")
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=0)

    @classmethod
    def for_model(cls, model: str) -> GanConfig:
        """`--model dcgan` trains for MODEL_EPOCHS: without labels it learns more slowly
        (test FD 8.1x below the untrained generator's at 30 epochs, 14x at 60)."""
        base = super().for_model(model)
        epochs = MODEL_EPOCHS.get(model, base.train.epochs)
        return dataclasses.replace(base, train=dataclasses.replace(base.train, epochs=epochs))

    @classmethod
    def smoke(cls) -> GanConfig:
        base = super().smoke()
        return dataclasses.replace(base, latent_dim=16, width=8)


@dataclass(frozen=True)
class GanOptions(PredictOptions):
    count: Positive = 64  # images to generate when no labels are given
    label: int | None = None  # class to generate (cdcgan only; default: every class in turn)
    seed: NonNegative = 0  # noise seed


class GanTask(Task):
    """Generates images; reports the Frechet distance to real ones in a judge's features."""

    name = "gan"
    description = "DCGAN and class-conditional DCGAN on digits, FD-measured with a LeNet judge"
    Config = GanConfig
    models = tuple(CONDITIONAL)
    datasets = {k: v for k, v in IMAGE_SETS.items() if k != "digits"}
    metric = "fd"
    metric_mode = "min"
    PredictOptions = GanOptions
    Result = GeneratedImage
    inputs = ""  # images are asked for by options (count, label, seed) or by labels in Python

    @property
    def conditional(self) -> bool:
        return CONDITIONAL[self.config.model]

    def load_data(self) -> Dataset:
        cfg = self.config
        dataset = load_image_set(cfg.data, cfg.image_size, cfg.channels)
        h, w, _ = dataset.info["input_shape"]
        if min(h, w) < 16:
            raise ZooError(f"data set {cfg.data!r} has {h}x{w} images; the LeNet judge needs "
                           f"at least 16x16 (--set image_size=28)")
        rng = np.random.default_rng(EVAL_NOISE_SEED)
        for split in ("val", "test"):  # one fixed sample per real image, of its class
            noise = rng.standard_normal((dataset.size(split), cfg.latent_dim))
            dataset.splits[split] = with_arrays(dataset.splits[split], z=noise.astype(np.float32))
        return dataset

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        cfg = self.config
        return GAN(tuple(info["input_shape"]), judge.untrained(info), latent_dim=cfg.latent_dim,
                   width=cfg.width, num_classes=len(info["classes"]) if self.conditional else 0,
                   rngs=rngs)

    def pretrained_parts(self, info: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        """The judge `config.judge` names, for a GAN trained from scratch."""
        return {"judge": judge.judge_weights(self.config.judge, info)}

    def make_optimizer(self, model: GAN, tx: optax.GradientTransformation) -> nnx.Object:
        return nnx.Dict(g=nnx.Optimizer(model.generator, tx, wrt=nnx.Param),
                        d=nnx.Optimizer(model.discriminator, tx, wrt=nnx.Param))

    def train_step(self, model: GAN, optimizer: nnx.Dict, batch: Batch,
                   rng: jax.Array) -> dict[str, jax.Array]:
        """A discriminator update, a generator update, then the generator's average."""
        real = batch["image"].astype(jnp.float32) / 127.5 - 1.0
        labels = batch["label"]
        k_d, k_g = jax.random.split(rng)
        shape = (real.shape[0], model.latent_dim)
        out = steps.discriminator_step(model, optimizer["d"], real, labels,
                                       jax.random.normal(k_d, shape), batch)
        out |= steps.generator_step(model, optimizer["g"], labels, jax.random.normal(k_g, shape))
        t = optimizer["g"].step[...].astype(jnp.float32)  # warm-up: early weights fade fast
        update_average(model.average, model.generator,
                       jnp.minimum(self.config.ema_decay, (1.0 + t) / (10.0 + t)))
        return out

    def eval_step(self, model: GAN, batch: Batch) -> dict[str, jax.Array]:
        labels = batch["label"]
        real = to_unit_range(batch["image"])
        fake = model.sample(batch["z"], labels)
        untrained = model.sample(batch["z"], labels, untrained=True)
        fake_features = model.judge.features(fake)
        out = {"real": model.judge.features(real), "fake": fake_features,
               "untrained": model.judge.features(untrained),
               "probs": jax.nn.softmax(model.judge.fc2(fake_features))}
        if self.conditional:
            out["correct"] = jnp.argmax(out["probs"], -1) == labels
        return out

    def new_metrics(self, info: Mapping[str, Any]) -> QualityMetrics:
        del info
        return QualityMetrics()

    def on_epoch_end(self, model: GAN, info: Mapping[str, Any], workdir: Path,
                     epoch: int) -> None:
        """Writes `samples/epoch_NNN.png` from fixed noise (one column per class if conditional)."""
        n = GRID_ROWS * (len(info["classes"]) if self.conditional else GRID_ROWS)
        z, labels, columns = self._inputs(model, info, n, GRID_SEED)
        path = workdir / "samples" / f"epoch_{epoch:03d}.png"
        save_grid(np.asarray(_sample(model, z, labels)), path, columns)

    # -- predict -----------------------------------------------------------------------

    def prepare(self, info, inputs, options) -> list[Prepared]:
        """One noise vector per image asked for: by class (`inputs` or `options.label`),
        or `options.count` images, every class in turn for a conditional model."""
        if inputs:
            labels = [self._label(info, x) for x in inputs]
        elif options.label is not None:
            labels = [self._label(info, options.label)] * options.count
        elif self.conditional:
            labels = [i % len(info["classes"]) for i in range(options.count)]
        else:
            labels = [None] * options.count
        key = jax.random.key(options.seed)  # image i's noise: of (seed, i), whatever the count
        z = np.asarray(jax.vmap(lambda i: jax.random.normal(
            jax.random.fold_in(key, i), (self.config.latent_dim,)))(np.arange(len(labels))))
        return [Prepared({"z": noise, "label": np.int32(label or 0)}, label)
                for noise, label in zip(z, labels)]

    def example_input(self, info) -> list[int | None]:
        return [0 if self.conditional else None]

    def forward(self, model, info, batch):
        return {"images": model.sample(batch["z"], batch["label"])}

    def infer(self, model, info, batch, options):
        images = self.forward(model, info, batch)["images"]
        return {"images": images, "judged": jnp.argmax(model.judge(images), -1)}

    def to_result(self, info, outputs, prepared, options) -> GeneratedImage:
        image = np.clip(np.round(outputs["images"] * 255.0), 0, 255).astype(np.uint8)
        label = prepared.context
        classes = info["classes"]
        return GeneratedImage(image, None if label is None else classes[label],
                              classes[int(outputs["judged"])])

    def _label(self, info: Mapping[str, Any], label: Any) -> int | None:
        """A requested class (index or name) as an index; None for an unconditional model."""
        classes = info["classes"]
        if label is None and not self.conditional:
            return None
        if not self.conditional:
            raise ZooError(f"a label needs a class-conditional model; this run trained "
                           f"{self.config.model!r} (train one with --model cdcgan)")
        if isinstance(label, str) and label in classes:
            return classes.index(label)
        if isinstance(label, (int, np.integer)) and 0 <= label < len(classes):
            return int(label)
        raise ZooError(f"label {label!r}: choose a class index from 0 to {len(classes) - 1} "
                       f"(or a class name: {', '.join(classes)})")

    def _inputs(self, model: GAN, info: Mapping[str, Any], n: int,
                seed: int) -> tuple[jax.Array, jax.Array, int]:
        """Noise, labels and grid columns: one class per column if conditional."""
        classes = len(info["classes"])
        z = jax.random.normal(jax.random.key(seed), (n, model.latent_dim))
        labels = jnp.arange(n, dtype=jnp.int32) % classes
        return z, labels, classes if self.conditional else 0
