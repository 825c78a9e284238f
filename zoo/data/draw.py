"""Pictures of predictions: class-coloured mask overlays, label PNGs, boxes, instances,
skeletons."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

IGNORE = 255  # the label index that marks "not labelled" in masks
SIDE_COLOURS = {"left": (40, 160, 255), "right": (255, 90, 40), "centre": (255, 215, 0)}


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
    """(H, W, 3) colour pixels of an (H, W) or (H, W, C) image: grey repeated, alpha dropped."""
    image = image[..., None] if image.ndim == 2 else image
    return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., :3]


def draw_skeletons(image: np.ndarray, people: Sequence[np.ndarray],
                   limbs: Sequence[tuple[int, int]], limb_sides: Sequence[str],
                   captions: Sequence[str], *, min_side: int = 256) -> Image.Image:
    """`image` with each person's limbs drawn in their side's colour (left blue, right
    orange, centre yellow), joints as dots and a caption above them.

    Small images are enlarged (nearest neighbour) to at least `min_side` pixels so the
    drawing reads at a glance; `people` are (K, 2) x, y in `image`'s pixels.
    """
    rgb = _rgb(image)
    zoom = max(1, -(-min_side // max(rgb.shape[:2])))
    img = Image.fromarray(rgb).resize((rgb.shape[1] * zoom, rgb.shape[0] * zoom),
                                      Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 160))
    for joints, caption in zip(people, captions):
        xy = [tuple(float(v) * zoom for v in p) for p in joints]
        for (a, b), side in zip(limbs, limb_sides):
            draw.line([xy[a], xy[b]], fill=SIDE_COLOURS[side], width=width)
        for x, y in xy:
            draw.ellipse([x - width, y - width, x + width, y + width], fill=(255, 255, 255),
                         outline=(0, 0, 0))
        left, top = min(x for x, _ in xy), min(y for _, y in xy)
        box = draw.textbbox((left, top), caption)
        y = max(top - (box[3] - box[1]) - 4, 0)
        draw.rectangle([left, y, left + box[2] - box[0] + 2, y + box[3] - box[1] + 2],
                       fill=(255, 255, 255))
        draw.text((left + 1, y), caption, fill=(0, 0, 0))
    return img
