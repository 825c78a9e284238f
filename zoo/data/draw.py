"""Pictures of predictions: class-coloured mask overlays, label PNGs and boxes."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

IGNORE = 255  # the label index that marks "not labelled" in masks


def palette() -> np.ndarray:
    """(256, 3) uint8 colours: 0 black (background), 255 white (ignore), distinct hues between."""
    hues = (np.arange(256) * 0.618034) % 1.0  # golden-ratio steps: neighbours differ most
    value = np.where(np.arange(256) % 2, 1.0, 0.75)
    colours = np.asarray(Image.fromarray(np.stack(
        [hues * 255, np.full(256, 200.0), value * 255], -1).astype(np.uint8)[None], "HSV")
        .convert("RGB"))[0].copy()
    colours[0], colours[IGNORE] = 0, 255
    return colours


def overlay_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> Image.Image:
    """`image` (H, W, C uint8) with labelled pixels (not 0, not ignore) tinted by class."""
    rgb = _rgb(image)
    tint = palette()[mask].astype(np.float32)
    labelled = ((mask != 0) & (mask != IGNORE))[..., None]
    out = np.where(labelled, (1 - alpha) * rgb + alpha * tint, rgb)
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def label_image(mask: np.ndarray) -> Image.Image:
    """An (H, W) index mask as a palette image: the indices are the pixel values."""
    img = Image.fromarray(mask.astype(np.uint8), "P")
    img.putpalette(palette().ravel().tolist())
    return img


def save_label_png(path: str | Path, mask: np.ndarray) -> None:
    """Saves an (H, W) index mask as a palette PNG."""
    label_image(mask).save(path)


def draw_boxes(image: np.ndarray, boxes: np.ndarray, classes: Sequence[int],
               labels: Sequence[str]) -> Image.Image:
    """`image` with each (x0, y0, x1, y1) box outlined in its class colour and captioned."""
    rgb = _rgb(image)
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    colours = palette()
    width = max(1, round(max(img.size) / 200))
    for box, cls, label in zip(boxes, classes, labels):
        colour = tuple(int(c) for c in colours[1 + int(cls) % 254])
        x0, y0, x1, y1 = (float(v) for v in box)
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=colour, width=width)
        left, top, right, bottom = draw.textbbox((x0, y0), label)
        y = y0 - (bottom - top) - 2 if y0 - (bottom - top) - 2 >= 0 else y1
        draw.rectangle([x0, y, x0 + right - left + 2, y + bottom - top + 2], fill=colour)
        draw.text((x0 + 1, y), label, fill=(0, 0, 0))
    return img


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour pixels of an (H, W, C) image: grey repeated, alpha dropped."""
    return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., :3]
