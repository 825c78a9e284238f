"""Text-line OCR: a CRNN (conv features + BiLSTM) trained with CTC, as in Tesseract 4."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import editdistance
import jax
import numpy as np
from flax import nnx

from zoo.batching import Prepared
from zoo.config import EarlyStoppingConfig, OptimizerConfig, Positive, TaskConfig, TrainConfig
from zoo.data.images import as_image, to_unit_range
from zoo.errors import ZooError
from zoo.models.crnn import CRNN
from zoo.models.ctc import ctc_beam_search, ctc_greedy, ctc_loss
from zoo.predictions import Text
from zoo.task import Buckets, Dataset, Metrics, PredictOptions, Task, compiled, row_mean
from zoo_tasks.ocr import data, synthetic


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
    width_buckets: int = 4  # training batches of lines of similar width, each computed on its
    # bucket's width (1: every batch at the widest line's width)
    train: TrainConfig = TrainConfig(epochs=3, batch_size=32, eval_batch_size=200)
    optimizer: OptimizerConfig = OptimizerConfig(name="adam", lr=3e-3, schedule="cosine",
                                                 warmup_epochs=0.5, grad_clip_norm=5.0)
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig(patience=4)

    @classmethod
    def smoke(cls) -> OCRConfig:
        base = super().smoke()
        return cls(data="handwritten", conv=(8, 8, 8), hidden=16, layers=1, width_buckets=1,
                   train=base.train)


@dataclass(frozen=True)
class OCROptions(PredictOptions):
    beam: Positive = compiled(1)  # CTC beam width (1: best path)


class OCRTask(Task):
    """Reads the text of a line image; reports test `cer` and `line_accuracy`."""

    name = "ocr"
    description = "text-line OCR: conv + BiLSTM + CTC on generated or your own line images"
    Config = OCRConfig
    models = ("crnn",)
    datasets = data.DATASETS
    metric = "cer"
    metric_mode = "min"
    PredictOptions = OCROptions
    Result = Text
    inputs = "LINE_IMAGE"

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

    def buckets(self, info) -> Buckets | None:
        """Lines by width: a batch of short lines is computed on its bucket's width (a
        line's loss does not depend on the padding, see CRNN)."""
        widths = bucket_widths(info["max_width"], self.config.width_buckets)
        if len(widths) == 1:
            return None
        return Buckets(key=functools.partial(width_bucket, widths=widths),
                       shape=functools.partial(at_width, widths=widths))

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

    def prepare(self, info, inputs, options) -> list[Prepared]:
        """Each line scaled to the model's height and padded to one width: the widest
        line the model reads (padding never changes a line's scores, see CRNN)."""
        max_width = max(info["max_width"], self.config.max_width)
        padded = -(-max_width // synthetic.STRIDE) * synthetic.STRIDE
        prepared = []
        for item in inputs:
            line = data.fit_line(as_image(item, channels=1), info["height"], max_width)
            image = np.zeros((info["height"], padded, 1), np.uint8)
            image[:, :line.shape[1], 0] = line
            prepared.append(Prepared({"image": image, "width": np.int32(line.shape[1])}))
        return prepared

    def example_input(self, info) -> list[np.ndarray]:
        return [np.zeros((info["height"], info["height"], 1), np.uint8)]  # a blank square

    def forward(self, model, info, batch):
        logits, frames = model(to_unit_range(batch["image"]), batch["width"])
        return {"logits": logits, "frames": frames}

    def infer(self, model, info, batch, options):
        outputs = self.forward(model, info, batch)
        return {**outputs, "ids": decode(outputs["logits"], outputs["frames"], options.beam)}

    def to_result(self, info, outputs, prepared, options) -> Text:
        return Text(ids_to_text(outputs["ids"], info["alphabet"]))


def bucket_widths(max_width: int, buckets: int) -> list[int]:
    """The image widths of `buckets` equal steps up to `max_width`, in whole columns of
    the model's stride (fewer when `max_width` is narrow)."""
    steps = (-(-max_width * k // buckets // synthetic.STRIDE) * synthetic.STRIDE
             for k in range(1, buckets + 1))
    return sorted({min(step, max_width) for step in steps})


def width_bucket(arrays: Mapping[str, np.ndarray], widths: Sequence[int]) -> np.ndarray:
    """Each line's bucket: the first of `widths` it fits in."""
    return np.searchsorted(np.asarray(widths), arrays["width"])


def at_width(batch: dict[str, np.ndarray], bucket: int,
             widths: Sequence[int]) -> dict[str, np.ndarray]:
    """`batch` with its images cut (or zero-padded) to bucket `bucket`'s width."""
    image, width = batch["image"], widths[bucket]
    padding = ((0, 0), (0, 0), (0, max(width - image.shape[2], 0)), (0, 0))
    return {**batch, "image": np.pad(image[:, :, :width], padding)}


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
