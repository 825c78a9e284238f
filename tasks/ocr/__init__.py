"""Text-line OCR: a CRNN (conv features + BiLSTM) trained with CTC, as in Tesseract 4."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import editdistance
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from zoo.config import EarlyStoppingConfig, OptimizerConfig, TaskConfig, TrainConfig
from zoo.data.images import load_image, to_unit_range
from zoo.errors import ZooError
from zoo.models.crnn import CRNN
from zoo.models.ctc import ctc_beam_search, ctc_greedy, ctc_loss
from zoo.task import Dataset, Metrics, Task, row_mean
from zoo_tasks.ocr import data


@dataclass(frozen=True)
class OCRConfig(TaskConfig):
    model: str = "crnn"
    data: str = "mixed"  # mixed | handwritten | printed | lines:FOLDER
    height: int = 32  # line height in pixels (lines:FOLDER images are scaled to it)
    max_width: int = 512  # wider lines:FOLDER images are squeezed to this width
    conv: tuple[int, ...] = (16, 32, 64)  # channels of the three conv layers
    hidden: int = 96  # LSTM units per direction
    layers: int = 2  # bidirectional LSTM layers
    beam: int = 1  # CTC decoding: 1 = best path (greedy), >1 = prefix beam search width
    train: TrainConfig = TrainConfig(epochs=4, batch_size=32, eval_batch_size=200)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=1e-3, schedule="cosine",
                                                 warmup_epochs=0.5, grad_clip_norm=5.0)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=4)

    @classmethod
    def smoke(cls) -> OCRConfig:
        base = super().smoke()
        return cls(data="handwritten", conv=(8, 8, 8), hidden=16, layers=1, train=base.train)


class OCRTask(Task):
    """Reads the text of a line image; reports test `cer` and `line_accuracy`."""

    name = "ocr"
    description = "text-line OCR: conv + BiLSTM + CTC on generated or your own line images"
    Config = OCRConfig
    models = ("crnn",)
    datasets = data.DATASETS
    metric = "cer"
    metric_mode = "min"

    def load_data(self) -> Dataset:
        return data.load(self.config.data, self.config.height, self.config.max_width)

    def build_model(self, info: Mapping[str, Any], rngs: nnx.Rngs) -> nnx.Module:
        cfg = self.config
        if len(cfg.conv) < 2:
            raise ZooError(f"conv={cfg.conv}: give at least two conv widths (each of the first "
                           f"two halves the width: the data's column stride of 4)")
        pools = ((2, 2), (2, 2)) + ((2, 1),) * (len(cfg.conv) - 2)
        return CRNN(info["height"], 1, len(info["alphabet"]) + 1, widths=cfg.conv, pools=pools,
                    hidden=cfg.hidden, layers=cfg.layers, dtype=self.compute_dtype, rngs=rngs)

    def loss(self, model, batch, rng):
        del rng
        logits, frames = model(to_unit_range(batch["image"]), batch["width"])
        return row_mean(ctc_loss(logits, frames, batch["label"]), batch), {}

    def eval_step(self, model, batch):
        logits, frames = model(to_unit_range(batch["image"]), batch["width"])
        mask = batch["mask"]
        losses = ctc_loss(logits, frames, batch["label"])
        return {"count": mask.sum(), "loss": (losses * mask).sum(),
                "text": decode(logits, frames, self.config.beam)}

    def new_metrics(self, info: Mapping[str, Any]) -> Metrics:
        return CharacterMetrics(info["alphabet"])

    @classmethod
    def add_predict_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("inputs", nargs="+", metavar="IMAGE",
                            help="images of one text line each (any size or mode)")
        parser.add_argument("--beam", type=int, default=1,
                            help="CTC beam width (1: best path)")

    def predict(self, model, info, args) -> str:
        if args.beam < 1:
            raise ZooError(f"--beam must be at least 1, got {args.beam}")
        texts = []
        for path in args.inputs:
            line = data.fit_line(load_image(path, channels=1), info["height"],
                                 max(info["max_width"], self.config.max_width))
            image = jnp.asarray(line[None, :, :, None])
            width = jnp.asarray([line.shape[1]], jnp.int32)
            logits, frames = model(to_unit_range(image), width)
            texts.append(ids_to_text(np.asarray(decode(logits, frames, args.beam))[0],
                                     info["alphabet"]))
        if len(texts) == 1:
            return texts[0]
        return "\n".join(f"{path}\t{text}" for path, text in zip(args.inputs, texts))


def decode(logits: jax.Array, frames: jax.Array, beam: int) -> jax.Array:
    """Character ids [B, T] (0-padded): best path for beam 1, else prefix beam search."""
    return ctc_greedy(logits, frames) if beam <= 1 else ctc_beam_search(logits, frames, beam=beam)


def ids_to_text(ids: np.ndarray, alphabet: str) -> str:
    return "".join(alphabet[i - 1] for i in ids if i > 0)


class CharacterMetrics(Metrics):
    """Character error rate (edit distance / reference length) and exact-line accuracy."""

    def __init__(self, alphabet: str):
        super().__init__()
        self.alphabet = alphabet
        self.errors = self.chars = self.exact = 0

    def update(self, batch, outputs) -> None:
        outputs = dict(outputs)
        predicted = outputs.pop("text")
        super().update(batch, outputs)
        for pred, label, real in zip(predicted, batch["label"], batch["mask"]):
            if real:
                hyp, ref = ids_to_text(pred, self.alphabet), ids_to_text(label, self.alphabet)
                distance = editdistance.eval(hyp, ref)
                self.errors += distance
                self.chars += len(ref)
                self.exact += distance == 0

    def compute(self) -> dict[str, Any]:
        lines = self._sums.get("count", 0.0)
        return {**super().compute(), "cer": self.errors / max(self.chars, 1),
                "line_accuracy": self.exact / max(lines, 1.0)}
