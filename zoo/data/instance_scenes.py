"""Digit scenes for instance segmentation: digits of one class that touch and overlap.

A sibling of `zoo.data.scenes` (same MNIST pools, same rendering), laid out so that a
semantic mask cannot tell the objects apart: each digit after the first is placed
against an earlier one (its partner), their ink boxes touching or overlapping a little,
and with probability `same_class` it is another image of the partner's class. Overlapping
strokes are composited by maximum, as in `scenes`; each ink pixel belongs to the digit
brightest there. Every scene carries an instance-id map (0 background, j + 1 for the
digit in slot j) and, per slot, the box of the pixels it owns, its class and a validity
flag. Cached as .npz, keyed by the config.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.data.scenes import (INK, SPLITS, cached_splits, digit_sources, render_slots,
                             tight_boxes)
from zoo.errors import ZooError

GENERATOR_VERSION = 1  # bump when the layout or rendering changes: old caches are then ignored
MAX_IOU = 0.2  # no two digits' ink boxes overlap more than this (each stays readable)


@dataclass(frozen=True)
class InstanceSceneConfig:
    """What the generated instance scenes look like and how many there are."""

    canvas: int = 64  # side of the square canvas, pixels
    min_digits: int = 2  # fewest digits in a scene (uniform up to max_digits)
    max_digits: int = 4  # most digits in a scene
    min_scale: int = 18  # smallest side of a digit's 28x28 MNIST frame once scaled, pixels
    max_scale: int = 30  # largest side of a digit's scaled frame, pixels
    same_class: float = 0.6  # chance a digit repeats the class of the digit it touches
    overlap: float = 0.25  # how far a digit reaches into its partner's ink box (0: just touch)
    train: int = 6000  # training scenes
    val: int = 500  # validation scenes
    test: int = 1000  # test scenes
    seed: int = 0  # layout seed (the digit images per split stay disjoint for any seed)

    @classmethod
    def smoke(cls) -> InstanceSceneConfig:
        """A few small scenes, for tests that only need the plumbing to run."""
        return cls(canvas=32, max_digits=3, min_scale=12, max_scale=18, train=64, val=32,
                   test=32)


def load_instance_scenes(cfg: InstanceSceneConfig) -> dict[str, dict[str, np.ndarray]]:
    """The three splits for `cfg`, generated once and then read from cache.

    Each split holds "image" uint8 (N, H, W, 1), "instances" uint8 (N, H, W) (0
    background, j + 1 = slot j), "boxes" float32 (N, K, 4) pixel (x0, y0, x1, y1) of
    each slot's own pixels, "classes" int32 (N, K), "box_valid" bool (N, K) and
    "digit_ids" int32 (N, K) (-1 for an empty slot). K is `cfg.max_digits`.
    """
    return cached_splits("instance-scenes", GENERATOR_VERSION, cfg, generate)


def generate(cfg: InstanceSceneConfig) -> dict[str, dict[str, np.ndarray]]:
    """Renders every split of `cfg` (deterministic in `cfg`; no caching)."""
    _check(cfg)
    digits, labels, pools, ink_boxes = digit_sources(cfg.seed)
    out = {}
    for i, split in enumerate(SPLITS):
        rng = np.random.default_rng([cfg.seed, 100 + i])
        ids, scale, y0, x0, valid = _layout(cfg, getattr(cfg, split), pools[split], labels,
                                            ink_boxes, rng)
        out[split] = _render(cfg.canvas, digits, labels, ids, scale, y0, x0, valid)
    return out


def _check(cfg: InstanceSceneConfig) -> None:
    if not 1 <= cfg.min_digits <= cfg.max_digits <= 254:
        raise ZooError(f"instance scenes: need 1 <= min_digits <= max_digits <= 254, got "
                       f"{cfg.min_digits} and {cfg.max_digits}")
    if not 8 <= cfg.min_scale <= cfg.max_scale <= cfg.canvas:
        raise ZooError(f"instance scenes: need 8 <= min_scale <= max_scale <= canvas, got "
                       f"{cfg.min_scale}, {cfg.max_scale} and {cfg.canvas}")
    if not (0 <= cfg.same_class <= 1 and 0 <= cfg.overlap < 1):
        raise ZooError(f"instance scenes: need same_class in [0, 1] and overlap in [0, 1), "
                       f"got {cfg.same_class} and {cfg.overlap}")
    if min(cfg.train, cfg.val, cfg.test) < 1:
        raise ZooError("instance scenes: every split needs at least one scene "
                       "(scenes.train/val/test)")


def _layout(cfg: InstanceSceneConfig, n: int, pool: np.ndarray, labels: np.ndarray,
            ink_boxes: np.ndarray, rng: np.random.Generator, tries: int = 100):
    """Digit ids, scales, frame offsets and validity of `n` scenes.

    Classes and partners are drawn once; placements are redrawn (vectorised rejection
    sampling) for every scene whose ink boxes leave the canvas or overlap by more than
    `MAX_IOU`, at most `tries` times; a scene still failing keeps only its first digit.
    """
    k = cfg.max_digits
    valid = np.arange(k)[None, :] < rng.integers(cfg.min_digits, k + 1, n)[:, None]
    partner = np.zeros((n, k), np.int64)
    classes = rng.integers(0, 10, (n, k))
    repeat = rng.random((n, k)) < cfg.same_class
    for j in range(1, k):
        partner[:, j] = rng.integers(0, j, n)
        inherited = classes[np.arange(n), partner[:, j]]
        classes[:, j] = np.where(repeat[:, j], inherited, classes[:, j])
    ids = _digits_of_class(pool, labels, classes, rng)
    scale = rng.integers(cfg.min_scale, cfg.max_scale + 1, (n, k)).astype(np.float32)
    ink = ink_boxes[ids] * (scale / 28.0)[..., None]  # (top, left, bottom, right) in the frame
    half, middle = (ink[..., 2:] - ink[..., :2]) / 2, (ink[..., 2:] + ink[..., :2]) / 2
    origin = np.zeros((n, k, 2), np.float32)  # (y0, x0) of each frame on the canvas
    redo = np.ones(n, bool)
    for _ in range(tries):
        idx = np.flatnonzero(redo)  # accepted scenes stay as they are
        centres = _place(cfg, half[idx], partner[idx], rng)
        origin[idx] = np.floor(centres - middle[idx])
        boxes = ink[idx] + np.concatenate([origin[idx], origin[idx]], -1)
        redo[idx] = _rejected(boxes, valid[idx], cfg.canvas)
        if not redo.any():
            break
    valid[redo, 1:] = False
    return ids, scale, origin[..., 0], origin[..., 1], valid


def _digits_of_class(pool: np.ndarray, labels: np.ndarray, classes: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """A random digit image of the pool for every entry of `classes`."""
    by_class = [pool[labels[pool] == c] for c in range(10)]
    sizes = np.array([len(b) for b in by_class])
    if not sizes.all():
        raise ZooError("instance scenes: a split's digit pool lacks a class")
    start = np.cumsum(sizes) - sizes
    pick = (rng.random(classes.shape) * sizes[classes]).astype(np.int64)
    return np.concatenate(by_class)[start[classes] + pick]


def _place(cfg: InstanceSceneConfig, half: np.ndarray, partner: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """(m, k, 2) ink-box centres (y, x): the first digit anywhere on the canvas, each later
    one against its partner, in a random direction, its box reaching `overlap` into the
    partner's (as a fraction of the distance at which the two boxes just touch)."""
    m, k = partner.shape
    centres = np.zeros((m, k, 2))
    room = np.maximum(cfg.canvas - 2 * half[:, 0], 0)
    centres[:, 0] = half[:, 0] + rng.random((m, 2)) * room
    angle = rng.uniform(0, 2 * np.pi, (m, k))
    direction = np.stack([np.sin(angle), np.cos(angle)], -1)
    reach = rng.uniform(1 - cfg.overlap, 1, (m, k))
    rows = np.arange(m)
    for j in range(1, k):
        p = partner[:, j]
        gap = (half[:, j] + half[rows, p]) / np.maximum(np.abs(direction[:, j]), 1e-6)
        touch = gap.min(-1)  # distance along `direction` at which the boxes meet
        centres[:, j] = centres[rows, p] + (touch * reach[:, j])[:, None] * direction[:, j]
    return centres


def _rejected(boxes: np.ndarray, valid: np.ndarray, canvas: int) -> np.ndarray:
    """Per scene: does a valid (top, left, bottom, right) ink box leave the canvas, or do
    two overlap by more than `MAX_IOU`?"""
    outside = ((boxes[..., :2] < 0) | (boxes[..., 2:] > canvas)).any(-1) & valid
    a, b = boxes[:, :, None], boxes[:, None, :]
    h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    union = area[:, :, None] + area[:, None, :] - h * w
    k = boxes.shape[1]
    pairs = valid[:, :, None] & valid[:, None, :] & ~np.eye(k, dtype=bool)
    crowded = (pairs & (h * w > MAX_IOU * np.maximum(union, 1e-6))).any(axis=(1, 2))
    return outside.any(-1) | crowded


def _render(size, digits, labels, ids, scale, y0, x0, valid) -> dict[str, np.ndarray]:
    """Pixels, instance-id map and per-instance boxes of laid-out scenes (chunked)."""
    n, k = ids.shape
    image = np.empty((n, size, size), np.uint8)
    instances = np.empty((n, size, size), np.uint8)
    boxes = np.zeros((n, k, 4), np.float32)
    for start in range(0, n, 512):
        sl = slice(start, min(start + 512, n))
        slots = render_slots(digits[ids[sl]], scale[sl], y0[sl], x0[sl], valid[sl], size)
        top = slots.max(1)
        owner = np.where(top >= INK - 0.5, slots.argmax(1) + 1, 0)  # rounds to ink: owned
        instances[sl] = owner
        boxes[sl], owns = tight_boxes(owner[:, None] == np.arange(1, k + 1)[None, :, None, None])
        valid[sl] &= owns
        image[sl] = np.clip(np.rint(top), 0, 255)
    boxes[~valid] = 0
    return {"image": image[..., None], "instances": instances, "boxes": boxes,
            "classes": np.where(valid, labels[ids], 0).astype(np.int32),
            "box_valid": valid, "digit_ids": np.where(valid, ids, -1).astype(np.int32)}
