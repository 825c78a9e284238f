"""Generated cartoon faces: people of fixed traits, photos of varying nuisance.

The embedded default data of the face tasks (attributes, verification). A *person* is a
set of traits drawn once: face shape (width, height, squareness, jaw), skin tone, eye
spacing, size and shape, iris colour, brows, nose, mouth width and lips, ears, hair style
(bald, short, bangs, long), hair colour and a beard. Each *photo* of a person adds
nuisance: position, scale and rotation, lighting (direction, contrast, brightness,
colour cast, noise), expression (smile, open mouth, raised brows, gaze), glasses, a hat
and the background. Twelve binary attributes are read off both: some belong to the
person (bald, bangs, beard, big nose, hair colour, narrow eyes, pale skin), some to the
photo (eyeglasses, mouth open, smiling, hat).

Every split draws its people from its own random stream, so the people of train, val
and test are disjoint by construction (the test pairs of verification are never seen in
training), and everything is a function of (`FaceConfig`, split): deterministic and
cached as .npz after the first run (`face_render` draws the pixels).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from zoo.config import Positive
from zoo.data import face_render
from zoo.data.cache import cached_arrays
from zoo.errors import ZooError
from zoo.paths import cache_dir

GENERATOR_VERSION = 1  # bump when the drawing changes: old caches are then ignored
SPLITS = ("train", "val", "test")
ATTRIBUTES = ("Bald", "Bangs", "Beard", "Big_Nose", "Blond_Hair", "Dark_Hair", "Eyeglasses",
              "Mouth_Open", "Narrow_Eyes", "Pale_Skin", "Smiling", "Wearing_Hat")
# black, dark brown, brown, blond, red, grey: the first two are "dark"
HAIR_COLOURS = np.array([[0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.48, 0.32, 0.17],
                         [0.92, 0.8, 0.48], [0.68, 0.26, 0.1], [0.72, 0.72, 0.72]], np.float32)
DARK_HAIR, BLOND_HAIR = (0, 1), 3
IRIS_COLOURS = np.array([[0.35, 0.2, 0.08], [0.2, 0.45, 0.75], [0.25, 0.55, 0.3],
                         [0.45, 0.48, 0.5]], np.float32)
PALE, DARK_SKIN = np.array([0.99, 0.88, 0.8], np.float32), np.array([0.4, 0.25, 0.16], np.float32)
CHUNK = 256  # images drawn per vectorised pass (about 20 MB of float32 temporaries)


@dataclass(frozen=True)
class FaceConfig:
    """How many generated people and photos each split holds."""

    train: Positive = 1000  # people in the training split
    val: Positive = 100  # people in the validation split
    test: Positive = 125  # people in the test split
    photos: Positive = 8  # photos of each person
    seed: int = 0  # the people and photos drawn (splits stay disjoint for any seed)

    @classmethod
    def smoke(cls) -> FaceConfig:
        """Enough people for a few seconds of training to beat chance, and test pairs
        (60 people: 120 pairs) enough to tell it from luck."""
        return cls(train=200, val=30, test=60, photos=4)


def load_faces(cfg: FaceConfig, size: int) -> dict[str, dict[str, np.ndarray]]:
    """Every split of `cfg` at `size` x `size` pixels, drawn once, then read from cache.

    Each split holds "image" uint8 (N, S, S, 3), "person" int32 (N,) (0-based within
    the split, photos of a person consecutive) and "attributes" uint8 (N, 12) in the
    order of `ATTRIBUTES`, where N = people x photos.
    """
    key = json.dumps({"version": GENERATOR_VERSION, "size": size, **dataclasses.asdict(cfg)},
                     sort_keys=True)
    path = cache_dir("data") / f"faces-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    flat = cached_arrays(path, lambda: {f"{s}/{k}": v for s in SPLITS
                                        for k, v in generate(cfg, s, size).items()})
    return {s: {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(s + "/")}
            for s in SPLITS}


def generate(cfg: FaceConfig, split: str, size: int) -> dict[str, np.ndarray]:
    """Draws one split (deterministic in `cfg`, `split` and `size`; no caching)."""
    if size < 16:
        raise ZooError(f"image_size={size}: generated faces need at least 16x16 pixels")
    rng = split_rng(cfg, split)
    people = getattr(cfg, split)
    traits = draw_people(people, rng)
    person = np.repeat(np.arange(people, dtype=np.int32), cfg.photos)
    params = {k: v[person] for k, v in traits.items()}
    params.update(draw_photos(len(person), rng))
    images = np.empty((len(person), size, size, 3), np.uint8)
    for start in range(0, len(person), CHUNK):  # full chunks only: one compiled shape
        part = {k: _pad(v[start:start + CHUNK], CHUNK) for k, v in params.items()}
        part["noise"] = rng.standard_normal((CHUNK, size, size, 3), np.float32) * 0.02
        drawn = np.asarray(face_render.draw(part, size))[:len(person) - start]
        images[start:start + CHUNK] = np.round(drawn * 255)
    return {"image": images, "person": person, "attributes": attributes(params)}


def split_rng(cfg: FaceConfig, split: str) -> np.random.Generator:
    """The random stream of one split: its people are drawn first, then their photos."""
    return np.random.default_rng([cfg.seed, SPLITS.index(split)])


def _pad(values: np.ndarray, n: int) -> np.ndarray:
    """`values` with its last row repeated up to `n` rows."""
    return np.concatenate([values, np.repeat(values[-1:], n - len(values), axis=0)])


def _uniform(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, n).astype(np.float32)


def draw_people(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The fixed traits of `n` people (face-space units: the face is about 1.1 wide)."""
    u = functools.partial(_uniform, rng, n)
    pale = rng.random(n) < 0.2
    tone = np.where(pale, rng.uniform(0.0, 0.1, n), rng.uniform(0.3, 1.0, n)).astype(np.float32)
    skin = PALE + tone[:, None] * (DARK_SKIN - PALE) + rng.normal(0, 0.02, (n, 3))
    narrow, big_nose = rng.random(n) < 0.25, rng.random(n) < 0.3
    hair_kind = rng.choice(len(HAIR_COLOURS), n, p=[0.25, 0.2, 0.17, 0.18, 0.1, 0.1])
    people = {
        "face_w": u(0.44, 0.58), "face_h": u(0.56, 0.7), "face_power": u(1.8, 3.4),
        "jaw_taper": u(0.0, 0.35), "skin": skin.astype(np.float32), "skin_tone": tone,
        "eye_y": u(-0.12, 0.0), "eye_gap": u(0.17, 0.27), "eye_w": u(0.085, 0.125),
        "eye_aspect": np.where(narrow, u(0.22, 0.36), u(0.55, 0.9)),
        "iris": (IRIS_COLOURS[rng.choice(len(IRIS_COLOURS), n)]
                 + rng.normal(0, 0.04, (n, 3))).astype(np.float32),
        "brow_thickness": u(0.012, 0.035), "brow_tilt": u(-0.35, 0.35),
        "nose_length": np.where(big_nose, u(0.22, 0.3), u(0.1, 0.17)),
        "nose_width": np.where(big_nose, u(0.08, 0.11), u(0.035, 0.06)),
        "mouth_w": u(0.11, 0.19), "lip": u(0.02, 0.032), "ear_size": u(0.08, 0.13),
        "lips": (skin * rng.uniform(0.35, 0.55, (n, 1)) + [0.25, 0.02, 0.02]).astype(np.float32),
        "hair_style": rng.choice(4, n, p=[0.15, 0.35, 0.25, 0.25]).astype(np.float32),
        "hair_kind": hair_kind, "hair_volume": u(0.03, 0.1),
        "hair": HAIR_COLOURS[hair_kind] * rng.uniform(0.85, 1.15, (n, 1)).astype(np.float32),
        "beard": (rng.random(n) < 0.25).astype(np.float32),
    }
    people["mouth_y"] = people["eye_y"] + 0.04 + people["nose_length"] + u(0.07, 0.13)
    return people


def draw_photos(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """What changes from photo to photo of one person."""
    u = functools.partial(_uniform, rng, n)
    smile = (rng.random(n) < 0.45).astype(np.float32)
    open_ = (rng.random(n) < 0.3).astype(np.float32)
    return {
        "shift_x": u(-0.1, 0.1), "shift_y": u(0.0, 0.12), "scale": u(1.05, 1.3),
        "rotation": np.deg2rad(u(-12, 12)),
        "smile": smile, "curve": np.where(smile > 0, u(0.07, 0.12), u(-0.02, 0.01)),
        "open": open_ * u(0.07, 0.11), "mouth_open": open_,
        "brow_raise": u(-0.01, 0.03), "gaze": u(-1, 1),
        "glasses": (rng.random(n) < 0.3).astype(np.float32),
        "lens": rng.uniform(0.3, 0.9, (n, 3)).astype(np.float32),
        "frame": rng.uniform(0.0, 0.5, (n, 3)).astype(np.float32),
        "hat": (rng.random(n) < 0.2).astype(np.float32),
        "hat_colour": rng.uniform(0.05, 0.95, (n, 3)).astype(np.float32),
        "background": rng.uniform(0.15, 0.95, (n, 3)).astype(np.float32),
        "bg_gradient": u(-0.3, 0.3),
        "light": u(0.0, 0.4), "light_angle": u(0, 2 * np.pi), "contrast": u(0.8, 1.15),
        "brightness": u(0.8, 1.15),
        "cast": (1.0 + rng.normal(0, 0.04, (n, 3))).astype(np.float32),
    }


def attributes(p: dict[str, np.ndarray]) -> np.ndarray:
    """The 12 binary attributes (uint8, order of `ATTRIBUTES`) of photos drawn with `p`."""
    style, kind = p["hair_style"], p["hair_kind"]
    hairy = style != face_render.HAIR_BALD
    values = {
        "Bald": ~hairy, "Bangs": style == face_render.HAIR_BANGS, "Beard": p["beard"] > 0,
        "Big_Nose": p["nose_length"] > 0.2,
        "Blond_Hair": hairy & (kind == BLOND_HAIR),
        "Dark_Hair": hairy & np.isin(kind, DARK_HAIR),
        "Eyeglasses": p["glasses"] > 0, "Mouth_Open": p["mouth_open"] > 0,
        "Narrow_Eyes": p["eye_aspect"] < 0.45, "Pale_Skin": p["skin_tone"] < 0.2,
        "Smiling": p["smile"] > 0, "Wearing_Hat": p["hat"] > 0,
    }
    return np.stack([values[name] for name in ATTRIBUTES], axis=1).astype(np.uint8)
