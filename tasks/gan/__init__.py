"""DCGAN on digits, plain or class-conditional, with its sample quality measured.

Both networks train in one compiled step on the ordinary harness (checkpoints, resume,
early stopping on the validation Frechet distance, logs, devices). Quality is measured
by a judge: a trained LeNet classifier, by default the published
`classification/lenet:mnist-sample` (`judge.py`).
"""

from __future__ import annotations

import argparse
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

from zoo.config import (EarlyStoppingConfig, NonNegative, OptimizerConfig, Positive, Range,
                        TaskConfig, TrainConfig)
from zoo.data.image_sets import IMAGE_SETS, load_image_set
from zoo.data.images import to_unit_range
from zoo.errors import ZooError
from zoo.models.copies import update_average
from zoo.task import Batch, Dataset, Task
from zoo_tasks.gan import judge, steps
from zoo_tasks.gan.grid import save_grid
from zoo_tasks.gan.model import GAN
from zoo_tasks.gan.quality import QualityMetrics

CONDITIONAL = {"dcgan": False, "cdcgan": True}  # model name -> class-conditional
EVAL_NOISE_SEED = 7  # fixed noise for the val/test samples: comparable across runs and seeds
GRID_SEED = 11  # fixed noise for the per-epoch sample grid: watch the same samples improve
GRID_ROWS = 8


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
    train: TrainConfig = TrainConfig(epochs=60, batch_size=64, log_every=20)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3, momentum=0.5,
                                                 schedule="constant")
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=0)

    @classmethod
    def smoke(cls) -> GanConfig:
        base = super().smoke()
        return dataclasses.replace(base, latent_dim=16, width=8)


class GanTask(Task):
    """Generates images; reports the Frechet distance to real ones in a judge's features."""

    name = "gan"
    description = "DCGAN and class-conditional DCGAN on digits, FD-measured with a LeNet judge"
    Config = GanConfig
    models = tuple(CONDITIONAL)
    datasets = {k: v for k, v in IMAGE_SETS.items() if k != "digits"}
    metric = "fd"
    metric_mode = "min"

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
            dataset.splits[split]["z"] = noise.astype(np.float32)
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
                                       jax.random.normal(k_d, shape))
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
        z, labels, columns = self._inputs(model, info, n, None, GRID_SEED)
        save_grid(np.asarray(model.sample(z, labels)), workdir / "samples" / f"epoch_{epoch:03d}.png",
                  columns)

    # -- zoo predict ---------------------------------------------------------------------

    @classmethod
    def add_predict_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--n", type=int, default=64, help="number of images to generate")
        parser.add_argument("--label", type=int, help="class index to generate (cdcgan only; "
                                                      "default: every class in turn)")
        parser.add_argument("--out", type=Path, default=Path("samples.png"), help="PNG to write")
        parser.add_argument("--seed", type=int, default=0, help="noise seed")

    def predict(self, model: GAN, info: Mapping[str, Any], args: argparse.Namespace) -> str:
        if args.n < 1:
            raise ZooError(f"--n {args.n}: generate at least one image")
        z, labels, columns = self._inputs(model, info, args.n, args.label, args.seed)
        images = model.sample(z, labels)
        save_grid(np.asarray(images), args.out, columns)
        message = f"wrote {args.n} generated images to {args.out}"
        if self.conditional:
            agree = int(jnp.sum(jnp.argmax(model.judge(images), -1) == labels))
            message += f" (the judge sees the requested class in {agree}/{args.n})"
        return message

    def _inputs(self, model: GAN, info: Mapping[str, Any], n: int, label: int | None,
                seed: int) -> tuple[jax.Array, jax.Array, int]:
        """Noise, labels and grid columns: one class per column unless `label` is given."""
        classes = len(info["classes"])
        if label is not None and not self.conditional:
            raise ZooError(f"--label needs a class-conditional model; this run trained "
                           f"{self.config.model!r} (train one with --model cdcgan)")
        if label is not None and not 0 <= label < classes:
            raise ZooError(f"--label {label}: choose a class index from 0 to {classes - 1}")
        z = jax.random.normal(jax.random.key(seed), (n, model.latent_dim))
        if label is not None:
            return z, jnp.full((n,), label, jnp.int32), 0
        labels = jnp.arange(n, dtype=jnp.int32) % classes
        return z, labels, classes if self.conditional else 0
