"""Pictures of predictions: class-coloured mask overlays, label PNGs, boxes, instances."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


def save_label_png(path: str | Path, mask: np.ndarray) -> None:
    """Saves an (H, W) index mask as a palette PNG: the indices are the pixel values."""
    img = Image.fromarray(mask.astype(np.uint8), "P")
    img.putpalette(palette().ravel().tolist())
    img.save(path)


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


def draw_instances(image: np.ndarray, masks: np.ndarray, captions: Sequence[str], *,
                   min_side: int = 384) -> Image.Image:
    """`image` with each object's (H, W) mask tinted and outlined in its own colour, and a
    legend beside it (never over the objects): one colour swatch and caption per object.

    Small images are enlarged by a whole factor (nearest) until their longer side reaches
    `min_side`, so captions stay readable next to them.
    """
    rgb = _rgb(image)
    factor = max(1, -(-min_side // max(rgb.shape[:2])))
    out = rgb.repeat(factor, 0).repeat(factor, 1).astype(np.float32)
    colours = palette()[1:1 + len(masks)].astype(np.float32)
    for mask, colour in zip(masks, colours):
        big = np.asarray(mask, bool).repeat(factor, 0).repeat(factor, 1)
        out[big] = 0.4 * out[big] + 0.6 * colour
        out[big & ~_eroded(big, max(1, factor // 3))] = colour
    picture = Image.fromarray(out.astype(np.uint8))
    font = ImageFont.load_default(size=max(14, min(picture.size) // 24))
    line = font.getbbox("Ag")[3] + 8
    text_width = max((font.getbbox(c)[2] for c in captions), default=0)
    legend = Image.new("RGB", (line + text_width + 24, max(picture.height, line * len(captions) + 8)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    for i, (caption, colour) in enumerate(zip(captions, colours)):
        y = 6 + i * line
        draw.rectangle([8, y + 2, 8 + line - 8, y + line - 6], fill=tuple(int(c) for c in colour),
                       outline=(0, 0, 0))
        draw.text((line + 12, y), caption, fill=(0, 0, 0), font=font)
    sheet = Image.new("RGB", (picture.width + legend.width, legend.height), (255, 255, 255))
    sheet.paste(picture, (0, 0))
    sheet.paste(legend, (picture.width, 0))
    return sheet


def _eroded(mask: np.ndarray, steps: int) -> np.ndarray:
    """`mask` shrunk by `steps` pixels (4-neighbourhood): what is left inside its outline."""
    inner = mask.copy()
    for _ in range(steps):
        padded = np.pad(inner, 1)
        inner = (inner & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] &
                 padded[1:-1, 2:])
    return inner


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour pixels of an (H, W, C) image: grey repeated, alpha dropped."""
    return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., :3]
