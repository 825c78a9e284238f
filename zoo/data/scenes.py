"""Multi-digit scenes from the embedded MNIST sample: one generator, two label views.

Each scene is a dark canvas holding a few MNIST digits at random scales and positions
(their ink boxes never touch), optionally with random strokes of clutter. It carries
both a per-pixel class mask (0 background, 1 + digit) for segmentation and one box plus
class per digit for detection, derived from the same rendered pixels, so the two views
always agree. Train, val and test draw their digits from disjoint MNIST images.

Rendering is vectorised: a digit placed at scale s and offset (y0, x0) is `Ry @ digit @
Rx.T`, with Ry and Rx antialiased linear-interpolation matrices, one batched matmul for
every digit of every scene. The result is cached as .npz, keyed by the config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.data import mnist
from zoo.data.cache import cached_arrays
from zoo.data.loader import split_indices
from zoo.data.raster import segment_distance
from zoo.errors import ZooError
from zoo.paths import cache_dir

GENERATOR_VERSION = 1  # bump when the rendering changes: old caches are then ignored
SPLITS = ("train", "val", "test")
INK = 128  # a pixel at or above this intensity is ink (a digit's mask and its box)
CLASSES = [str(i) for i in range(10)]


@dataclass(frozen=True)
class SceneConfig:
    """What the generated scenes look like and how many there are."""

    canvas: int = 64  # side of the square canvas, pixels
    min_digits: int = 1  # fewest digits in a scene (the count is uniform up to max_digits)
    max_digits: int = 4  # most digits in a scene
    min_scale: int = 16  # smallest side of a digit's 28x28 MNIST frame once scaled, pixels
    max_scale: int = 32  # largest side of a digit's scaled frame, pixels
    clutter: int = 0  # faint random strokes per scene, labelled background
    train: int = 6000  # training scenes
    val: int = 500  # validation scenes
    test: int = 1000  # test scenes
    seed: int = 0  # layout seed (the digit images per split stay disjoint for any seed)

    @classmethod
    def smoke(cls) -> "SceneConfig":
        """A few small scenes, for tests that only need the plumbing to run."""
        return cls(canvas=32, max_digits=2, train=64, val=32, test=32)


def load_scenes(cfg: SceneConfig) -> dict[str, dict[str, np.ndarray]]:
    """The three splits of scenes for `cfg`, generated once and then read from cache.

    Each split holds "image" uint8 (N, H, W, 1), "segmentation" uint8 (N, H, W),
    "boxes" float32 (N, K, 4) as pixel (x0, y0, x1, y1) with x1, y1 exclusive,
    "classes" int32 (N, K), "box_valid" bool (N, K) and "digit_ids" int32 (N, K): the
    MNIST-sample index of each digit (-1 for an empty slot). K is `cfg.max_digits`.
    """
    return cached_splits("scenes", GENERATOR_VERSION, cfg, generate)


def cached_splits(name: str, version: int, cfg: Any,
                  generate_splits: Callable[[Any], dict[str, dict[str, np.ndarray]]],
                  ) -> dict[str, dict[str, np.ndarray]]:
    """`generate_splits(cfg)`, made once and kept as `name-HASH.npz` in the cache, the
    hash taken over `version` and every field of the config dataclass `cfg`."""
    key = json.dumps({"version": version, **dataclasses.asdict(cfg)}, sort_keys=True)
    path = cache_dir("data") / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    flat = cached_arrays(path, lambda: {f"{s}/{k}": v for s, arrays in generate_splits(cfg).items()
                                        for k, v in arrays.items()})
    return {s: {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(s + "/")}
            for s in SPLITS}


def generate(cfg: SceneConfig) -> dict[str, dict[str, np.ndarray]]:
    """Renders every split of `cfg` (deterministic in `cfg`; no caching)."""
    _check(cfg)
    digits, labels, pools, ink_boxes = digit_sources(cfg.seed)
    out = {}
    for i, split in enumerate(SPLITS):
        rng = np.random.default_rng([cfg.seed, i])
        n = getattr(cfg, split)
        ids, scale, y0, x0, valid = _layout(cfg, n, pools[split], ink_boxes, rng)
        out[split] = _render(cfg, digits, labels, ids, scale, y0, x0, valid, rng)
    return out


def _check(cfg: SceneConfig) -> None:
    if not 1 <= cfg.min_digits <= cfg.max_digits:
        raise ZooError(f"scenes: need 1 <= min_digits <= max_digits, got "
                       f"{cfg.min_digits} and {cfg.max_digits}")
    if not 8 <= cfg.min_scale <= cfg.max_scale <= cfg.canvas:
        raise ZooError(f"scenes: need 8 <= min_scale <= max_scale <= canvas, got "
                       f"{cfg.min_scale}, {cfg.max_scale} and {cfg.canvas}")
    if min(cfg.train, cfg.val, cfg.test) < 1:
        raise ZooError("scenes: every split needs at least one scene (scenes.train/val/test)")


def digit_sources(seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """What scenes are drawn from: the MNIST sample's digits as float32 (N, 28, 28), their
    labels, each split's disjoint pool of digit indices (seeded) and each frame's ink box."""
    images, labels = mnist.mnist_sample()
    pools = split_indices(len(images), mnist.SAMPLE_SPLIT, seed=20240601 + seed)
    digits = images[..., 0].astype(np.float32)
    return digits, labels, pools, frame_ink_boxes(digits)


def frame_ink_boxes(digits: np.ndarray) -> np.ndarray:
    """(N, 4) ink extent (top, left, bottom, right; exclusive) of each 28x28 frame."""
    ink = digits >= INK
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    size = digits.shape[1]
    top, left = rows.argmax(1), cols.argmax(1)
    bottom, right = size - rows[:, ::-1].argmax(1), size - cols[:, ::-1].argmax(1)
    return np.stack([top, left, bottom, right], 1).astype(np.float32)


def _layout(cfg: SceneConfig, n: int, pool: np.ndarray, ink_boxes: np.ndarray,
            rng: np.random.Generator, tries: int = 100):
    """Digit ids, scales and frame offsets whose ink boxes lie inside and never touch.

    Vectorised rejection sampling: every scene with an overlap draws new offsets for
    its digits, at most `tries` times; a scene still overlapping then keeps only its
    first digit.
    """
    k = cfg.max_digits
    count = rng.integers(cfg.min_digits, k + 1, n)
    valid = np.arange(k)[None, :] < count[:, None]
    ids = rng.choice(pool, (n, k))
    scale = rng.integers(cfg.min_scale, cfg.max_scale + 1, (n, k)).astype(np.float32)
    y0 = np.zeros((n, k), np.float32)
    x0 = np.zeros((n, k), np.float32)
    ink = ink_boxes[ids] * (scale / 28.0)[..., None]  # in the frame, at its final scale
    # Offsets that keep the ink box (not the whole frame) on the canvas.
    lo_y, span_y = -ink[..., 0], np.maximum(cfg.canvas - ink[..., 2] + ink[..., 0], 0)
    lo_x, span_x = -ink[..., 1], np.maximum(cfg.canvas - ink[..., 3] + ink[..., 1], 0)
    redo = np.ones(n, bool)
    for _ in range(tries):
        idx = np.flatnonzero(redo)  # accepted scenes stay as they are
        y0[idx] = np.floor(lo_y[idx] + rng.random((len(idx), k)) * span_y[idx])
        x0[idx] = np.floor(lo_x[idx] + rng.random((len(idx), k)) * span_x[idx])
        boxes = ink[idx] + np.stack([y0[idx], x0[idx], y0[idx], x0[idx]], -1)
        redo[idx] = _touching(boxes, valid[idx])
        if not redo.any():
            break
    valid[redo, 1:] = False
    return ids, scale, y0, x0, valid


def _touching(boxes: np.ndarray, valid: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """Per scene: do any two valid ink boxes overlap or come within `margin` pixels?"""
    a, b = boxes[:, :, None], boxes[:, None, :]
    apart = ((a[..., 2] + margin <= b[..., 0]) | (b[..., 2] + margin <= a[..., 0]) |
             (a[..., 3] + margin <= b[..., 1]) | (b[..., 3] + margin <= a[..., 1]))
    k = boxes.shape[1]
    pairs = valid[:, :, None] & valid[:, None, :] & ~np.eye(k, dtype=bool)
    return (pairs & ~apart).any(axis=(1, 2))


def interpolation_matrix(offset: np.ndarray, scale: np.ndarray, out_size: int,
                         in_size: int = 28) -> np.ndarray:
    """(..., out_size, in_size) weights resampling a 1-D signal scaled to `scale` pixels.

    Output pixel centre y maps to source coordinate (y + 0.5 - offset) * in/scale - 0.5;
    weights are a triangle filter widened by the shrink factor (antialiasing), rows
    normalised where they fall inside the source, zero outside it.
    """
    ratio = in_size / scale[..., None, None]
    src = (np.arange(out_size)[:, None] + 0.5 - offset[..., None, None]) * ratio - 0.5
    support = np.maximum(ratio, 1.0)
    w = np.maximum(0.0, 1.0 - np.abs(src - np.arange(in_size)) / support)
    total = w.sum(-1, keepdims=True)
    inside = (src > -1) & (src < in_size)
    return np.where(inside & (total > 0), w / np.maximum(total, 1e-12), 0.0).astype(np.float32)


def render_slots(digits: np.ndarray, scale: np.ndarray, y0: np.ndarray, x0: np.ndarray,
                 valid: np.ndarray, size: int) -> np.ndarray:
    """(n, k, size, size) float intensities of (n, k) digit frames (n, k, 28, 28) placed at
    `scale` and offsets (y0, x0) on a size x size canvas, one slot each (zero where not
    `valid`): `Ry @ digit @ Rx.T`, one batched matmul."""
    ry = interpolation_matrix(y0, scale, size)
    rx = interpolation_matrix(x0, scale, size)
    slots = ry @ digits @ np.swapaxes(rx, -1, -2)
    slots *= valid[..., None, None]
    return slots


def tight_boxes(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 4) pixel boxes (x0, y0, x1, y1; x1, y1 exclusive) of (..., H, W) bool masks,
    and whether each mask has any pixel (an empty one's box is meaningless)."""
    rows, cols = masks.any(-1), masks.any(-2)
    height, width = masks.shape[-2:]
    boxes = np.stack([cols.argmax(-1), rows.argmax(-1), width - cols[..., ::-1].argmax(-1),
                      height - rows[..., ::-1].argmax(-1)], -1)
    return boxes, rows.any(-1)


def _render(cfg, digits, labels, ids, scale, y0, x0, valid, rng) -> dict[str, np.ndarray]:
    """Pixels, class mask and boxes of laid-out scenes (chunked to bound memory)."""
    n, k = ids.shape
    size = cfg.canvas
    image = np.empty((n, size, size), np.uint8)
    seg = np.empty((n, size, size), np.uint8)
    boxes = np.zeros((n, k, 4), np.float32)
    for start in range(0, n, 512):
        sl = slice(start, min(start + 512, n))
        slots = render_slots(digits[ids[sl]], scale[sl], y0[sl], x0[sl], valid[sl], size)
        boxes[sl], inked = tight_boxes(slots >= INK - 0.5)  # rounds to >= INK in uint8
        valid[sl] &= inked
        top = slots.max(1)
        owner = np.take_along_axis(labels[ids[sl]] + 1, slots.argmax(1).reshape(len(top), -1),
                                   axis=1).reshape(top.shape)
        seg[sl] = np.where(top >= INK - 0.5, owner, 0)
        if cfg.clutter:
            top = np.maximum(top, _strokes(rng, top.shape[0], cfg.clutter, size))
        image[sl] = np.clip(np.rint(top), 0, 255)
    boxes[~valid] = 0
    return {"image": image[..., None], "segmentation": seg, "boxes": boxes,
            "classes": np.where(valid, labels[ids], 0).astype(np.int32),
            "box_valid": valid, "digit_ids": np.where(valid, ids, -1).astype(np.int32)}


def _strokes(rng: np.random.Generator, n: int, count: int, size: int) -> np.ndarray:
    """Random short anti-aliased line segments, (n, H, W) float intensities below INK.

    Their peak stays under `INK`, so clutter never reads as ink; the model must still
    learn to ignore it.
    """
    p = rng.uniform(0, size, (n, count, 2, 2))  # (scene, stroke, end, yx)
    width = rng.uniform(0.8, 1.8, (n, count, 1, 1))
    peak = rng.uniform(60, INK - 8, (n, count, 1, 1))
    dist = segment_distance(p[:, :, 0, ::-1], p[:, :, 1, ::-1], size, size)
    return (peak * np.clip(1.0 - dist / width, 0, 1)).max(1)
