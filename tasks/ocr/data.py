"""Data sets for OCR: the generated embedded lines and `lines:FOLDER` of your own.

Every split is a dict of fixed-shape arrays: "image" uint8 [N, H, W, 1] (light ink on
dark, padded right with zeros to the data set's widest line), "width" int32 [N] (real
width, a multiple of the model's column stride) and "label" int32 [N, L] (character
ids from 1, 0-padded; 0 is the CTC blank).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from zoo.data import mnist
from zoo.data.cache import cached_arrays
from zoo.data.images import load_image, match_background
from zoo.data.loader import split_indices
from zoo.data.tables import read_tsv
from zoo.errors import ZooError, unknown
from zoo.paths import cache_dir
from zoo.task import Dataset
from zoo_tasks.ocr import synthetic

DATASETS = {
    "mixed": "generated lines: handwritten MNIST digit strings and printed receipt text "
             "(offline; the default)",
    "handwritten": "generated lines of 2-8 handwritten digits from the embedded MNIST sample",
    "printed": "generated printed lines (letters, digits, punctuation) with blur and noise",
    "lines:FOLDER": "your line images, listed with their text in FOLDER/labels.tsv "
                    "(file<TAB>text)",
}
SIZES = {"train": 8000, "val": 500, "test": 1000}  # lines per kind and split
SPLIT_SEED = 20240601
VERSION = 1  # bump when generation changes: names the cache file


def load(spec: str, height: int, max_width: int) -> Dataset:
    """Loads data set `spec` as padded line images, widths and label ids."""
    if spec.startswith("lines:"):
        return _folder(Path(spec.removeprefix("lines:")).expanduser(), height, max_width, spec)
    kinds = {"mixed": ("handwritten", "printed"), "handwritten": ("handwritten",),
             "printed": ("printed",)}
    if spec not in kinds:
        raise unknown("data set", spec, DATASETS)
    if height != synthetic.HEIGHT:
        raise ZooError(f"the generated lines are {synthetic.HEIGHT} pixels high; "
                       f"use --set height={synthetic.HEIGHT} with --data {spec}")
    splits = {name: _merge([_generated(kind, name) for kind in kinds[spec]]) for name in SIZES}
    return _dataset(splits, synthetic.ALPHABET, spec)


def _generated(kind: str, split: str) -> dict[str, np.ndarray]:
    """One kind of generated line for one split, cached as .npz after the first time."""
    return cached_arrays(cache_dir("data") / f"ocr-{kind}-{split}{SIZES[split]}-v{VERSION}.npz",
                         lambda: _generate(kind, split), compressed=True)


def _generate(kind: str, split: str) -> dict[str, np.ndarray]:
    seed = SPLIT_SEED + list(SIZES).index(split)
    if kind == "handwritten":
        images, labels = mnist.mnist_sample()
        own = split_indices(len(images), mnist.SAMPLE_SPLIT, SPLIT_SEED)[split]  # disjoint digits
        lines = list(synthetic.handwritten_lines(images[own], labels[own], SIZES[split], seed))
    else:
        texts = synthetic.printed_texts(sum(SIZES.values()), SPLIT_SEED)  # distinct texts,
        start = sum(list(SIZES.values())[:list(SIZES).index(split)])  # sliced per split
        rng = np.random.default_rng(seed)
        lines = [(synthetic.render(t, rng), t) for t in texts[start:start + SIZES[split]]]
    return _pack([im for im, _ in lines], [t for _, t in lines], synthetic.ALPHABET)


def _pack(lines: list[np.ndarray], texts: list[str], alphabet: str) -> dict[str, np.ndarray]:
    """Pads lines [H, w_i] and texts into the split arrays."""
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    height, width = lines[0].shape[0], max(line.shape[1] for line in lines)
    images = np.zeros((len(lines), height, width, 1), np.uint8)
    labels = np.zeros((len(texts), max(len(t) for t in texts)), np.int32)
    for i, (line, text) in enumerate(zip(lines, texts)):
        images[i, :, :line.shape[1], 0] = line
        labels[i, :len(text)] = [index[c] for c in text]
    widths = np.asarray([line.shape[1] for line in lines], np.int32)
    return {"image": images, "width": widths, "label": labels}


def _merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenates split arrays, padded to the widest."""
    width = max(p["image"].shape[2] for p in parts)
    length = max(p["label"].shape[1] for p in parts)
    padded = [_pad(p, width, length) for p in parts]
    return {k: np.concatenate([p[k] for p in padded]) for k in padded[0]}


def _pad(arrays: dict[str, np.ndarray], width: int, length: int) -> dict[str, np.ndarray]:
    """Images padded right to `width` columns, labels to `length` ids (zeros)."""
    image, label = arrays["image"], arrays["label"]
    return {**arrays,
            "image": np.pad(image, ((0, 0), (0, 0), (0, width - image.shape[2]), (0, 0))),
            "label": np.pad(label, ((0, 0), (0, length - label.shape[1])))}


def fit_line(image: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """A grey line image scaled to `height` (aspect kept, squeezed to `max_width` at most),
    as light ink on dark, its width rounded up to the column stride."""
    image = match_background(image, dark_background=True)[..., 0]
    h, w = image.shape
    width = max(1, min(round(w * height / h), max_width))
    scaled = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))
    line = np.zeros((height, -(-width // synthetic.STRIDE) * synthetic.STRIDE), np.uint8)
    line[:, :width] = scaled
    return line


def _folder(root: Path, height: int, max_width: int, spec: str) -> Dataset:
    labels_file = root / "labels.tsv"
    if not labels_file.is_file():
        raise ZooError(f"{spec}: no {labels_file}; list each line image with its text as "
                       f"file<TAB>text")
    table = read_tsv(labels_file, ("file", "text"), header=False)
    rows = list(zip(table.columns["file"], table.columns["text"]))
    if len(rows) < 3:
        raise ZooError(f"{labels_file}: {len(rows)} line(s); train, val and test need at least 3")
    lines = [fit_line(load_image(root / file, channels=1), height, max_width) for file, _ in rows]
    texts = [text for _, text in rows]
    if any(not t for t in texts):
        raise ZooError(f"{labels_file}: a line has empty text; every image needs its text")
    alphabet = "".join(sorted(set("".join(texts))))
    arrays = _pack(lines, texts, alphabet)
    n = len(rows)
    n_val, n_test = max(1, n // 10), max(1, n // 10)
    idx = split_indices(n, {"train": n - n_val - n_test, "val": n_val, "test": n_test}, SPLIT_SEED)
    splits = {s: {k: v[i] for k, v in arrays.items()} for s, i in idx.items()}
    return _dataset(splits, alphabet, spec)


def _dataset(splits: dict[str, dict[str, np.ndarray]], alphabet: str, spec: str) -> Dataset:
    """All splits padded alike (one compiled shape for train, val and test)."""
    width = max(s["image"].shape[2] for s in splits.values())
    length = max(s["label"].shape[1] for s in splits.values())
    splits = {name: _pad(s, width, length) for name, s in splits.items()}
    info = {"alphabet": alphabet, "height": splits["train"]["image"].shape[1], "data": spec,
            "max_width": width}
    return Dataset(splits, info)
