"""Generated stick figures: several people per image with COCO's 17 person joints.

Every person faces the viewer (so their left is on the image's right, as in a photo),
and has a random height, lean, arm and leg angles within plausible ranges, limbs
foreshortened by out-of-plane motion, and a tilted, turned head. They are drawn in
their own colours (top, trousers, shoes, skin): round-capped strokes for torso and
limbs, disks for the head, hands and shoes, dots for eyes and nose, small disks for
the ears. People overlap (up to `max_overlap` of the smaller box) and later ones hide
earlier ones; random strokes of clutter lie behind them and, in some images, a bar
lies across them.

Each joint carries COCO's visibility: 2 visible; 1 labelled but hidden (under a later
person or the bar, or the far ear of a turned head); 0 outside the image, where COCO
writes x = y = 0. A person's box is the extent of its own drawing within the image and
its OKS area is the box's (COCO uses the segment's area; a stick figure's segment is
too thin to stand for a body).

A horizontal mirror of a figure with left and right joints swapped is again a valid
figure: the cue for left and right (the face is drawn, so the figure faces the viewer)
is symmetric, as in photographs, so flip augmentation is consistent with the labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.colors import hsv_to_rgb

from zoo.data.raster import capsule, union_of_capsules
from zoo.data.scenes import SPLITS, cached_splits
from zoo.errors import ZooError
from zoo_tasks.pose.geometry import PARTS, Figures, sample_figures

GENERATOR_VERSION = 2  # bump when the drawing changes: old caches are then ignored
OCCLUDER = 127  # owner code of the bar in the per-pixel owner map
CHUNK = 64  # images drawn at once: their maps stay in the CPU cache


@dataclass(frozen=True)
class FigureConfig:
    """What the generated images look like and how many there are."""

    canvas: int = 64  # side of the square image, pixels
    min_people: int = 1  # fewest people in an image (uniform up to max_people)
    max_people: int = 4  # most people in an image
    min_height: int = 28  # smallest standing height (head top to ankles), pixels
    max_height: int = 52  # largest standing height, pixels
    max_overlap: float = 0.35  # most intersection of two people's boxes over the smaller box
    clutter: int = 3  # random strokes drawn behind the people, per image
    occluders: float = 0.25  # chance that an image has a bar drawn across its people
    train: int = 4000  # training images
    val: int = 500  # validation images
    test: int = 500  # test images
    seed: int = 0  # split i draws from numpy's generator seeded [seed, i]: disjoint poses

    @classmethod
    def smoke(cls) -> FigureConfig:
        """A few small images, for tests that only need the plumbing to run."""
        return cls(canvas=32, max_people=2, min_height=18, max_height=28, train=64, val=32,
                   test=32)


def load_figures(cfg: FigureConfig) -> dict[str, dict[str, np.ndarray]]:
    """The three splits for `cfg`, generated once and then read from zoo's cache.

    Each split holds "image" uint8 (N, S, S, 3), "keypoints" float32 (N, P, 17, 3) as
    COCO's (x, y, visibility), "boxes" float32 (N, P, 4) pixel (x0, y0, x1, y1),
    "area" float32 (N, P) and "person_valid" bool (N, P); P is `cfg.max_people`.
    """
    return cached_splits("figures", GENERATOR_VERSION, cfg, generate)


def generate(cfg: FigureConfig) -> dict[str, dict[str, np.ndarray]]:
    """Draws every split of `cfg` (deterministic in `cfg`; no caching)."""
    _check(cfg)
    out = {}
    for i, split in enumerate(SPLITS):
        rng = np.random.default_rng([cfg.seed, i])
        n = getattr(cfg, split)
        parts = [_draw_chunk(cfg, min(CHUNK, n - start), rng) for start in range(0, n, CHUNK)]
        out[split] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return out


def _check(cfg: FigureConfig) -> None:
    if not 1 <= cfg.min_people <= cfg.max_people <= 32:
        raise ZooError(f"figures: need 1 <= min_people <= max_people <= 32, got "
                       f"{cfg.min_people} and {cfg.max_people}")
    if not 12 <= cfg.min_height <= cfg.max_height <= cfg.canvas:
        raise ZooError(f"figures: need 12 <= min_height <= max_height <= canvas, got "
                       f"{cfg.min_height}, {cfg.max_height} and {cfg.canvas}")
    if not 0 <= cfg.max_overlap <= 1 or not 0 <= cfg.occluders <= 1:
        raise ZooError("figures: max_overlap and occluders must lie in [0, 1]")
    if min(cfg.train, cfg.val, cfg.test) < 1:
        raise ZooError("figures: every split needs at least one image (figures.train/val/test)")


def _draw_chunk(cfg: FigureConfig, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`n` images with their people's keypoints, boxes and areas."""
    size, p = cfg.canvas, cfg.max_people
    figures, valid = _layout(cfg, n, rng)
    image, _ = _paint(_background(rng, n, size),
                      _strokes(rng, n, cfg.clutter, size, width=(0.4, 1.1)))
    owner = np.full((n, size, size), -1, np.int16)
    boxes = np.zeros((n, p, 4), np.float32)
    for slot in range(p):
        rows = np.flatnonzero(valid[:, slot])
        if not len(rows):
            continue
        image[rows], alpha = _paint(image[rows], _figure_layers(figures.take(rows, slot), size))
        owner[rows] = np.where(alpha > 0.5, slot, owner[rows])
        boxes[rows, slot] = _extent(alpha > 0.5)
    barred = rng.random(n) < cfg.occluders
    bar = [(colour, coverage * barred[:, None, None])
           for colour, coverage in _strokes(rng, n, 1, size, width=(1.5, 3.5))]
    image, alpha = _paint(image, bar)
    owner = np.where(alpha > 0.5, OCCLUDER, owner)
    keypoints = _visibility(figures, valid, owner, size)
    valid &= (boxes[..., 2] > boxes[..., 0]) & (keypoints[..., 2] > 0).any(-1)
    keypoints[~valid] = 0
    boxes[~valid] = 0
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return {"image": np.clip(np.rint(image * 255), 0, 255).astype(np.uint8),
            "keypoints": keypoints, "boxes": boxes, "area": area.astype(np.float32),
            "person_valid": valid}


def _layout(cfg: FigureConfig, n: int, rng: np.random.Generator, tries: int = 30
            ) -> tuple[Figures, np.ndarray]:
    """Poses for every slot and which slots hold a person: each box lies mostly on the
    canvas and overlaps no earlier person's by more than `max_overlap` of the smaller.

    People are placed slot by slot, vectorised over images: a position that overlaps
    too much is drawn again, at most `tries` times, and the slot is left empty if none
    fits.
    """
    p, size = cfg.max_people, cfg.canvas
    count = rng.integers(cfg.min_people, p + 1, n)
    wanted = np.arange(p)[None, :] < count[:, None]
    figures = sample_figures(rng, rng.uniform(cfg.min_height, cfg.max_height, (n, p)))
    lo, hi = figures.extent()  # around the pelvis at (0, 0)
    slack = 0.15 * (hi - lo)  # how far a box may stick out of the canvas
    low, room = -lo - slack, np.maximum(size + 2 * slack - (hi - lo), 0)
    shift = np.zeros((n, p, 2))
    placed = np.zeros((n, p), bool)
    for slot in range(p):
        todo = np.flatnonzero(wanted[:, slot])
        for _ in range(tries):
            shift[todo, slot] = low[todo, slot] + rng.random((len(todo), 2)) * room[todo, slot]
            clash = _clashes(lo[todo] + shift[todo], hi[todo] + shift[todo], placed[todo],
                             slot, cfg.max_overlap)
            placed[todo[~clash], slot] = True
            todo = todo[clash]
            if not len(todo):
                break
    return figures.moved(shift), placed


def _clashes(lo: np.ndarray, hi: np.ndarray, placed: np.ndarray, slot: int,
             limit: float) -> np.ndarray:
    """Per image: does box `slot` share more than `limit` of the smaller box's area with
    a placed one? lo, hi: (n, p, 2) corners; placed: (n, p)."""
    inter = np.clip(np.minimum(hi[:, slot, None], hi) - np.maximum(lo[:, slot, None], lo),
                    0, None).prod(-1)
    area = (hi - lo).prod(-1)
    smaller = np.minimum(area[:, slot, None], area)
    return (placed & (inter > limit * smaller)).any(-1)


def _figure_layers(f: Figures, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One person per row: (colour (m, 3), coverage (m, size, size)) layers, back to front."""
    def f32(x):
        return x.astype(np.float32)

    def coverage(part):
        shapes = [(f32(a), f32(b), f32(r)) for a, b, r in f.strokes(part)]
        shapes += [(f32(c), f32(c), f32(r)) for c, r in f.dots(part)]
        return union_of_capsules(shapes, size, size)

    return [(f32(f.colours[part]), coverage(part)) for part in PARTS]


def _paint(image: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]
           ) -> tuple[np.ndarray, np.ndarray]:
    """`image` (n, H, W, 3) in [0, 1] with (colour (n, 3), coverage (n, H, W)) layers laid
    over it back to front, and the layers' joint coverage (n, H, W).

    Each layer's weight is its coverage times what the layers above it let through, so
    the colours mix in one matrix product instead of one pass over the image per layer.
    """
    through = np.ones(image.shape[:3], image.dtype)
    weights = []
    for _, coverage in reversed(layers):
        weights.append(coverage * through)
        through *= 1 - coverage
    n, h, w = through.shape
    if not layers:
        return image, 1 - through
    colours = np.stack([colour for colour, _ in reversed(layers)], 2)  # (n, 3, layers)
    mixed = np.matmul(colours, np.stack(weights, 1).reshape(n, len(weights), h * w))
    return image * through[..., None] + np.moveaxis(mixed.reshape(n, 3, h, w), 1, -1), 1 - through


def _extent(mask: np.ndarray) -> np.ndarray:
    """(m, 4) pixel box (x0, y0, x1, y1; exclusive) of each (m, H, W) mask; 0s if empty."""
    rows, cols = mask.any(-1), mask.any(-2)
    h, w = mask.shape[1:]
    box = np.stack([cols.argmax(-1), rows.argmax(-1), w - cols[:, ::-1].argmax(-1),
                    h - rows[:, ::-1].argmax(-1)], -1).astype(np.float32)
    return np.where(rows.any(-1)[:, None], box, 0)


def _visibility(f: Figures, valid: np.ndarray, owner: np.ndarray, size: int) -> np.ndarray:
    """(n, p, 17, 3) keypoints with COCO visibility from the final owner of each pixel."""
    xy = f.joints.astype(np.float32)  # (n, p, 17, 2)
    inside = ((xy >= 0) & (xy < size)).all(-1)
    col, row = (np.clip(xy[..., i], 0, size - 1).astype(np.int64) for i in (0, 1))
    n, p = valid.shape
    top = owner[np.arange(n)[:, None, None], row, col]  # who is drawn last at the joint
    slot = np.arange(p)[None, :, None]
    hidden = (top > slot) | f.self_hidden
    v = np.where(inside, np.where(hidden, 1, 2), 0) * valid[..., None]
    return np.concatenate([np.where(v[..., None] > 0, xy, 0), v[..., None]], -1).astype(np.float32)


def _background(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size, 3) float32 vertical two-colour gradients with faint noise."""
    ends = rng.random((n, 2, 3)) * rng.uniform(0.3, 1.0, (n, 1, 1))
    t = (np.arange(size) / max(size - 1, 1))[None, :, None, None]
    image = ends[:, None, None, 0] * (1 - t) + ends[:, None, None, 1] * t
    noise = rng.random((n, size, size, 3), dtype=np.float32) * 0.05 - 0.025
    return np.clip(image + noise, 0, 1, dtype=np.float32)


def _strokes(rng: np.random.Generator, n: int, count: int, size: int,
             width: tuple[float, float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` layers of random straight strokes, one per image each, in random colours."""
    layers = []
    for _ in range(count):
        a, b = rng.uniform(-4, size + 4, (2, n, 2)).astype(np.float32)
        radius = rng.uniform(*width, n).astype(np.float32)
        colour = hsv_to_rgb(rng.random((n, 3))).astype(np.float32)
        layers.append((colour, capsule(a, b, radius, size, size)))
    return layers
