"""Drawing cartoon faces: soft-edged shapes evaluated on every image's pixel grid.

Each part of a face (ears, head, hair, eyes, brows, nose, mouth, beard, glasses, hat) is
a signed distance in *face space* (the face centred at 0, about 1.1 units wide, y
pointing down), evaluated for a whole chunk of images at once on the pixel grid mapped
through each image's inverse pose (shift, scale, rotation). A distance becomes coverage
with a one-pixel ramp, so edges are antialiased at any pose, and parts are painted back
to front. It is all elementwise arithmetic, so `draw` is one jitted XLA program (about
3x faster than the same code in numpy, which writes every temporary out).
`zoo.data.faces` draws the traits and nuisance that parameterise it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

Params = Mapping[str, np.ndarray]  # name -> (n,) or (n, 3) per image; "noise" (n, S, S, 3)

HAIR_BALD, HAIR_SHORT, HAIR_BANGS, HAIR_LONG = range(4)
MOUTH_INSIDE = np.array([0.25, 0.05, 0.05], np.float32)


class Canvas:
    """Face-space coordinates of every pixel of n images, and the image being painted."""

    def __init__(self, p: Params, size: int):
        n = len(p["scale"])
        centres = (jnp.arange(size, dtype=jnp.float32) + 0.5) * (2.0 / size) - 1.0
        ys, xs = jnp.meshgrid(centres, centres, indexing="ij")
        dx, dy = xs[None] - _col(p["shift_x"]), ys[None] - _col(p["shift_y"])
        cos, sin = _col(jnp.cos(p["rotation"])), _col(jnp.sin(p["rotation"]))
        scale = _col(p["scale"])
        self.x = (cos * dx + sin * dy) / scale
        self.y = (-sin * dx + cos * dy) / scale
        self.pixel = (2.0 / size) / scale  # one pixel in face units: the edge ramp's width
        self.rgb = jnp.zeros((n, size, size, 3), jnp.float32)

    def fill(self, colour: jnp.ndarray) -> None:
        self.rgb = jnp.broadcast_to(colour[:, None, None, :], self.rgb.shape)

    def paint(self, distance: jnp.ndarray, colour: jnp.ndarray, opacity: float = 1.0) -> None:
        """Paints `colour` (n, 3) where `distance` < 0, with antialiased edges."""
        alpha = jnp.clip(0.5 - distance / self.pixel, 0.0, 1.0) * opacity
        self.rgb = self.rgb + alpha[..., None] * (colour[:, None, None, :] - self.rgb)


@functools.partial(jax.jit, static_argnums=1)
def draw(p: Params, size: int) -> jnp.ndarray:
    """Renders the faces described by `p` as float32 RGB in [0, 1], (n, size, size, 3)."""
    c = Canvas(p, size)
    _background(c, p)
    _long_hair(c, p)
    _ears(c, p)
    head = _head_shape(c, p)
    c.paint(head, p["skin"])
    _beard(c, p, head)
    _hair(c, p)
    _eyes(c, p)
    _brows(c, p)
    _nose(c, p)
    _mouth(c, p)
    _glasses(c, p)
    _hat(c, p)
    return _lighting(c.rgb, c, p)


def _col(v: jnp.ndarray) -> jnp.ndarray:
    """(n,) per-image values shaped to broadcast over (n, H, W)."""
    return jnp.asarray(v, jnp.float32)[:, None, None]


def ellipse(x, y, cx, cy, ax, ay):
    """Approximate signed distance to an axis-aligned ellipse (exact on a circle)."""
    ax, ay = jnp.maximum(ax, jnp.float32(1e-3)), jnp.maximum(ay, jnp.float32(1e-3))
    return (jnp.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2) - 1.0) * jnp.minimum(ax, ay)


def box(x, y, cx, cy, hx, hy):
    """Signed distance (Chebyshev) to an axis-aligned box of half-sizes hx, hy."""
    return jnp.maximum(jnp.abs(x - cx) - hx, jnp.abs(y - cy) - hy)


def _background(c: Canvas, p: Params) -> None:
    c.fill(p["background"])
    gradient = _col(p["bg_gradient"]) * (c.x * 0.5 + c.y * 0.5)
    c.rgb = c.rgb * (1.0 + gradient)[..., None]


def _head_shape(c: Canvas, p: Params, grow: float = 0.0) -> jnp.ndarray:
    """The face outline: a superellipse whose width narrows towards the chin."""
    a, b = _col(p["face_w"]) + grow, _col(p["face_h"]) + grow
    taper = 1.0 - _col(p["jaw_taper"]) * jnp.clip(c.y / b, 0.0, 1.0)
    power = _col(p["face_power"])
    r = (jnp.abs(c.x / (a * taper)) ** power + jnp.abs(c.y / b) ** power) ** (1.0 / power)
    return (r - 1.0) * jnp.minimum(a, b)


def _ears(c: Canvas, p: Params) -> None:
    a, size = _col(p["face_w"]), _col(p["ear_size"])
    shade = p["skin"] * 0.88
    for side in (-1.0, 1.0):
        c.paint(ellipse(c.x, c.y, side * a * 0.97, _col(p["eye_y"]) + 0.08, size * 0.55, size),
                shade)


def _hairline(c: Canvas, p: Params) -> jnp.ndarray:
    """Height of the hair's lower edge at each x: a fringe low on the forehead for
    bangs, higher otherwise, dropping to sideburns at the temples."""
    b = _col(p["face_h"])
    style = _col(p["hair_style"])
    top = jnp.where(style == HAIR_BANGS, jnp.float32(-0.28), jnp.float32(-0.5)) * b
    side = jnp.clip((jnp.abs(c.x) / _col(p["face_w"]) - 0.62) / 0.3, 0.0, 1.0)
    return top + side * (_col(p["eye_y"]) - top)


def _hair(c: Canvas, p: Params) -> None:
    cap = _head_shape(c, p, grow=_col(p["hair_volume"]))
    below = c.y - _hairline(c, p)  # > 0 under the hairline
    visible = _col(p["hair_style"]) != HAIR_BALD
    c.paint(jnp.where(visible, jnp.maximum(cap, below), 1.0), p["hair"])


def _long_hair(c: Canvas, p: Params) -> None:
    """Hair falling behind the head to the shoulders (painted before the face)."""
    a, b = _col(p["face_w"]), _col(p["face_h"])
    back = jnp.maximum(ellipse(c.x, c.y, 0.0, -0.15 * b, a + _col(p["hair_volume"]) + 0.06,
                              1.25 * b), c.y - 0.95 * b)
    long_ = _col(p["hair_style"]) == HAIR_LONG
    c.paint(jnp.where(long_, back, 1.0), p["hair"] * 0.9)


def _beard(c: Canvas, p: Params, head: jnp.ndarray) -> None:
    """A beard over the jaw and chin with a moustache, in the hair colour."""
    top = _col(p["mouth_y"]) - 0.07
    jaw = jnp.maximum(head - 0.01, top - c.y)
    moustache = ellipse(c.x, c.y, 0.0, _col(p["mouth_y"]) - 0.045, _col(p["mouth_w"]) * 1.15,
                        0.035)
    bearded = _col(p["beard"]) > 0
    c.paint(jnp.where(bearded, jnp.minimum(jaw, moustache), 1.0), p["hair"] * 0.85)


def _eyes(c: Canvas, p: Params) -> None:
    w = _col(p["eye_w"])
    h = w * _col(p["eye_aspect"]) * (1.0 - 0.25 * _col(p["smile"]))  # a smile narrows eyes
    y0 = _col(p["eye_y"])
    white = jnp.full_like(p["skin"], 0.97)
    iris_r = jnp.minimum(w * 0.55, h * 1.1)
    for side in (-1.0, 1.0):
        x0 = side * _col(p["eye_gap"])
        lid = ellipse(c.x, c.y, x0, y0, w, h)
        c.paint(lid, white)
        gaze = x0 + _col(p["gaze"]) * w * 0.3
        c.paint(jnp.maximum(ellipse(c.x, c.y, gaze, y0, iris_r, iris_r), lid), p["iris"])
        c.paint(jnp.maximum(ellipse(c.x, c.y, gaze, y0, iris_r * 0.45, iris_r * 0.45), lid),
                jnp.full_like(p["skin"], 0.05))


def _brows(c: Canvas, p: Params) -> None:
    w, y0 = _col(p["eye_w"]), _col(p["eye_y"])
    height = y0 - w * _col(p["eye_aspect"]) - 0.06 - _col(p["brow_raise"])
    for side in (-1.0, 1.0):
        x0 = side * _col(p["eye_gap"])
        tilt = _col(p["brow_tilt"]) * (c.x - x0) * side
        c.paint(ellipse(c.x, c.y - tilt, x0, height, w * 1.1, _col(p["brow_thickness"])),
                p["hair"] * 0.8)


def _nose(c: Canvas, p: Params) -> None:
    top = _col(p["eye_y"]) + 0.04
    length, width = _col(p["nose_length"]), _col(p["nose_width"])
    # a teardrop: narrow at the bridge, widest at the tip
    along = jnp.clip((c.y - top) / length, 0.0, 1.0)
    body = jnp.maximum(jnp.abs(c.x) - width * (0.35 + 0.65 * along ** 2), jnp.abs(c.y - top - length / 2) - length / 2)
    c.paint(body, p["skin"] * 0.78)
    for side in (-1.0, 1.0):
        c.paint(ellipse(c.x, c.y, side * width * 0.45, top + length - 0.01, width * 0.25, 0.015),
                p["skin"] * 0.45)


def _mouth(c: Canvas, p: Params) -> None:
    """Lips along a parabola whose corners rise with the smile; an open mouth shows a
    dark gap under the upper lip."""
    w = _col(p["mouth_w"]) * (1.0 + 0.2 * _col(p["smile"]))
    y0, t = _col(p["mouth_y"]), _col(p["lip"])
    u = jnp.clip(c.x / w, -1.0, 1.0)
    centre = y0 - _col(p["curve"]) * u ** 2
    inside = jnp.abs(c.x) - w
    gap = _col(p["open"]) * (1.0 - u ** 2)
    opening = jnp.maximum(inside, jnp.maximum(centre - c.y, c.y - centre - gap))
    c.paint(jnp.where(gap > 0.005, opening, 1.0), jnp.broadcast_to(MOUTH_INSIDE, p["skin"].shape))
    upper = jnp.maximum(inside, jnp.abs(c.y - centre) - t)
    lower = jnp.maximum(inside, jnp.abs(c.y - centre - gap) - t)
    c.paint(jnp.minimum(upper, lower), p["lips"])


def _glasses(c: Canvas, p: Params) -> None:
    r = _col(p["eye_w"]) * 1.45
    y0, gap = _col(p["eye_y"]), _col(p["eye_gap"])
    frames, lenses = 1.0, 1.0
    for side in (-1.0, 1.0):
        lens = ellipse(c.x, c.y, side * gap, y0, r, r * 0.8)
        lenses = jnp.minimum(lenses, lens)
        frames = jnp.minimum(frames, jnp.abs(lens) - 0.022)
    bridge = box(c.x, c.y, 0.0, y0 - r * 0.2, jnp.maximum(gap - r, 0.0) + 0.01, 0.016)
    on = _col(p["glasses"]) > 0
    c.paint(jnp.where(on, lenses, 1.0), p["lens"], opacity=0.35)
    c.paint(jnp.where(on, jnp.minimum(frames, bridge), 1.0), p["frame"])


def _hat(c: Canvas, p: Params) -> None:
    """A cap: a crown over the top of the head and a brim above the hairline."""
    a, b = _col(p["face_w"]), _col(p["face_h"])
    brim_y = -0.56 * b
    crown = jnp.maximum(ellipse(c.x, c.y, 0.0, brim_y, a + 0.1, 0.5 * b), c.y - brim_y)
    brim = box(c.x, c.y, 0.0, brim_y, a + 0.2, 0.045)
    on = _col(p["hat"]) > 0
    c.paint(jnp.where(on, jnp.minimum(crown, brim), 1.0), p["hat_colour"])


def _lighting(rgb: jnp.ndarray, c: Canvas, p: Params) -> jnp.ndarray:
    """Directional light, contrast, brightness and colour cast, then sensor noise."""
    angle = _col(p["light_angle"])
    ramp = 1.0 + _col(p["light"]) * (jnp.cos(angle) * c.x + jnp.sin(angle) * c.y) * 0.5
    rgb = rgb * ramp[..., None]
    mean = rgb.mean(axis=(1, 2, 3), keepdims=True)
    rgb = (rgb - mean) * _col(p["contrast"])[..., None] + mean
    rgb = rgb * (_col(p["brightness"])[..., None] * p["cast"][:, None, None, :])
    return jnp.clip(rgb + p["noise"], 0.0, 1.0)
