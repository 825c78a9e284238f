"""Typed prediction results: what `Task.predict` and `zoo.load(...).predict` return.

Each result is a frozen dataclass of numpy arrays and names, in the input's own terms
(boxes in the input image's pixels, masks at its resolution, decoded text), with
`to_json()` for programs and servers and `summary()` for a person. Image results draw
themselves on their input (`render`); `zoo predict` writes those drawings for `--out`
and the files a result type declares in `files`, so the command line needs to know
nothing about any task. A task with another kind of answer subclasses `Result`.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from zoo.data.draw import draw_boxes, label_image, overlay_mask
from zoo.data.images import output_paths


@dataclasses.dataclass(frozen=True)
class FileOption:
    """A file a result type can write, offered by `zoo predict` as `--NAME PATH`."""

    help: str
    suffix: str  # of each file in a directory, for several inputs
    default: str | None = None  # written even without the option


class Result:
    """Base of every prediction result."""

    files: ClassVar[Mapping[str, FileOption]] = {}  # option name -> the file it writes

    def to_json(self) -> dict[str, Any]:
        """JSON-able data: names, scores and coordinates as plain numbers."""
        raise NotImplementedError

    def summary(self) -> str:
        """One readable line."""
        raise NotImplementedError

    def line(self, source: str | None, several: bool) -> str:
        """The line `zoo predict` prints for this result of input `source`."""
        del several
        return f"{source}: {self.summary()}" if source else self.summary()

    def render(self, option: str, image: np.ndarray | None) -> Image.Image:
        """The picture `option` writes, drawn on the input `image` (uint8 HxWxC)."""
        raise NotImplementedError(f"{type(self).__name__} writes no {option} file")

    @classmethod
    def write(cls, option: str, results: Sequence[Result], sources: Sequence[str],
              images: Sequence[np.ndarray | None], out: str | Path) -> list[Path]:
        """Writes `option`'s files for `results` (one per input; `out` is a directory
        when there are several) and returns their paths, in input order."""
        paths = output_paths(sources, out, cls.files[option].suffix)
        for result, image, path in zip(results, images, paths):
            save_png(result.render(option, image), path)
        return paths

    @classmethod
    def report(cls, results: Sequence[Result], sources: Sequence[str | None],
               written: Mapping[str, Sequence[Path]]) -> list[str]:
        """The lines `zoo predict` prints: one per result, with the files written for it."""
        lines = []
        for i, (result, source) in enumerate(zip(results, sources)):
            files = "".join(f" -> {paths[i]}" for paths in written.values())
            lines.append(result.line(source, len(results) > 1) + files)
        return lines

    @classmethod
    def json_report(cls, results: Sequence[Result], sources: Sequence[str | None],
                    written: Mapping[str, Sequence[Path]]) -> Any:
        """What `zoo predict --json` prints: each result's JSON with its input and files."""
        return [{"input": source, **result.to_json(),
                 **({"files": {k: str(v[i]) for k, v in written.items()}} if written else {})}
                for i, (source, result) in enumerate(zip(sources, results))]


@dataclasses.dataclass(frozen=True)
class Classification(Result):
    """Class probabilities of one input.

    Attributes:
      probabilities: (classes,) softmax of the logits.
      classes: the class names, in the model's order.
      top_k: how many classes `summary` and `to_json` list.
    """

    probabilities: np.ndarray
    classes: tuple[str, ...]
    top_k: int = 1

    @property
    def label(self) -> str:
        return self.classes[int(np.argmax(self.probabilities))]

    @property
    def score(self) -> float:
        return float(np.max(self.probabilities))

    def top(self, k: int | None = None) -> list[tuple[str, float]]:
        """The `k` (default `top_k`) most probable classes with their probabilities."""
        order = np.argsort(-self.probabilities, kind="stable")[: max(1, k or self.top_k)]
        return [(self.classes[i], float(self.probabilities[i])) for i in order]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 6),
                "top": [{"label": name, "score": round(p, 6)} for name, p in self.top()]}

    def summary(self) -> str:
        return ", ".join(f"{name} (p={p:.3f})" for name, p in self.top())


@dataclasses.dataclass(frozen=True)
class Detections(Result):
    """The objects found in one image.

    Attributes:
      boxes: (n, 4) x0, y0, x1, y1 in the input image's pixels, best score first.
      scores: (n,) in [0, 1].
      class_ids: (n,) indices into `classes`.
      classes: the class names.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    classes: tuple[str, ...]

    files = {"out": FileOption("PNG with the boxes drawn (a directory for several images)",
                               "-boxes.png")}

    @property
    def labels(self) -> list[str]:
        return [self.classes[int(i)] for i in self.class_ids]

    def to_json(self) -> dict[str, Any]:
        return {"detections": [
            {"label": label, "score": round(float(s), 4), "box": [round(float(v), 1) for v in b]}
            for label, s, b in zip(self.labels, self.scores, self.boxes)]}

    def summary(self) -> str:
        if not len(self.scores):
            return "nothing found"
        return ", ".join(f"{label} ({s:.2f}) at [{', '.join(f'{v:.0f}' for v in b)}]"
                         for label, s, b in zip(self.labels, self.scores, self.boxes))

    def render(self, option: str, image: np.ndarray | None) -> Image.Image:
        captions = [f"{label} {s:.2f}" for label, s in zip(self.labels, self.scores)]
        return draw_boxes(image, self.boxes, self.class_ids, captions)


@dataclasses.dataclass(frozen=True)
class SegmentationMask(Result):
    """A class index per pixel of one image, at the input's resolution.

    Attributes:
      mask: (H, W) uint8 indices into `classes`; 0 is the background.
      classes: the class names.
    """

    mask: np.ndarray
    classes: tuple[str, ...]

    files = {"out": FileOption("colour overlay PNG (a directory for several images)",
                               "-overlay.png"),
             "mask_out": FileOption("class-index mask PNG, palette mode (a directory for "
                                    "several images)", "-mask.png")}

    def fractions(self) -> dict[str, float]:
        """Each class found besides the background: its share of the pixels, largest first."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.classes))
        return {self.classes[k]: float(counts[k] / self.mask.size)
                for k in np.argsort(-counts, kind="stable") if k != 0 and counts[k]}

    def to_json(self) -> dict[str, Any]:
        return {"fractions": {k: round(v, 6) for k, v in self.fractions().items()},
                "shape": list(self.mask.shape), "mask": self.mask.tolist()}

    def summary(self) -> str:
        found = [f"{name} {share:.1%}" for name, share in self.fractions().items()]
        return ", ".join(found) or "background only"

    def render(self, option: str, image: np.ndarray | None) -> Image.Image:
        if option == "mask_out":
            return label_image(self.mask)
        return overlay_mask(image, self.mask)


@dataclasses.dataclass(frozen=True)
class Text(Result):
    """Decoded text: a line read from an image, or a translation."""

    text: str

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text}

    def summary(self) -> str:
        return self.text

    def line(self, source: str | None, several: bool) -> str:
        """The text alone, after a tab-separated file name when there are several files."""
        return f"{source}\t{self.text}" if source and several else self.text


@dataclasses.dataclass(frozen=True)
class GeneratedImage(Result):
    """One generated image.

    Attributes:
      image: (H, W, C) uint8.
      label: the class it was asked for (None: unconditional).
      judged: the class a judge classifier sees in it (None: no judge).
    """

    image: np.ndarray
    label: str | None = None
    judged: str | None = None

    files = {"out": FileOption("PNG grid of the generated images", "", default="samples.png")}

    def to_json(self) -> dict[str, Any]:
        buffer = io.BytesIO()
        _image(self.image).save(buffer, format="PNG")
        return {"label": self.label, "judged": self.judged,
                "png_base64": base64.b64encode(buffer.getvalue()).decode("ascii")}

    def summary(self) -> str:
        asked = f"class {self.label}" if self.label is not None else "an image"
        return asked + (f" (the judge sees {self.judged})" if self.judged is not None else "")

    @classmethod
    def write(cls, option, results, sources, images, out) -> list[Path]:
        """One grid of every result: a column per class when several were asked for."""
        labels = {r.label for r in results}
        columns = len(labels) if len(labels) > 1 and None not in labels else 0
        path = Path(out)
        save_png(grid([r.image for r in results], columns), path)
        return [path] * len(results)

    @classmethod
    def report(cls, results, sources, written) -> list[str]:
        where = f" to {written['out'][0]}" if "out" in written else ""
        text = f"wrote {len(results)} generated images{where}"
        judged = [r for r in results if r.label is not None and r.judged is not None]
        if judged:
            agree = sum(r.judged == r.label for r in judged)
            text += f" (the judge sees the requested class in {agree}/{len(judged)})"
        return [text]


def grid(images: Sequence[np.ndarray], columns: int = 0, gap: int = 2) -> Image.Image:
    """HxWxC uint8 images tiled row by row (`columns` 0: a square), `gap` pixels apart."""
    n, (h, w, c) = len(images), images[0].shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    canvas = np.zeros((rows * (h + gap) + gap, columns * (w + gap) + gap, c), np.uint8)
    for i, image in enumerate(images):
        top, left = gap + (i // columns) * (h + gap), gap + (i % columns) * (w + gap)
        canvas[top:top + h, left:left + w] = image
    return _image(canvas)


def _image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)


def save_png(image: Image.Image, path: str | Path) -> None:
    """Writes a PNG through a temporary name, so a viewer never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    image.save(tmp, format="PNG")
    tmp.replace(path)
