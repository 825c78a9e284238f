"""Reading image files and image folders, with one-line errors for bad files."""

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from zoo.errors import ZooError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def load_image(path: str | Path, size: Sequence[int] | None = None, channels: int = 3) -> np.ndarray:
    """Reads an image as uint8 HxWxC, converting mode and optionally resizing to (h, w).

    Any 8-bit mode (palette, grey+alpha, RGBA, CMYK, 1-bit) is converted; 16-bit images
    are scaled to 8 bits; the first frame of an animation is used.

    Raises:
      ZooError: naming the file, if it is missing, empty, truncated, corrupt, so large
        it looks like a decompression bomb, or floating-point (no fixed range).
    """
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise ZooError(f"{path}: empty file, not an image")
    with opened(path) as img:
        img = _to_8bit(img, path).convert("L" if channels == 1 else "RGB")
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    return array.reshape(array.shape[0], array.shape[1], channels)


@contextlib.contextmanager
def opened(path: Path) -> Iterator[Image.Image]:
    """`Image.open(path)`, with every way a file can be bad as one `ZooError` naming it:
    corrupt, truncated, or so large it looks like a decompression bomb (refused before
    its pixels are decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                yield img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ZooError(f"{path}: refused, image too large ({e}); shrink it below "
                       f"{Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        raise ZooError(f"{path}: not a readable image (corrupt, or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ZooError(f"{path}: unreadable image ({e}); re-export or remove it") from None


def letterbox(image: np.ndarray, size: int, *, fill: int = 0,
              resample: Image.Resampling = Image.Resampling.BILINEAR,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fits `image` (H, W, C uint8) into a size x size square of `fill`, aspect kept, centred.

    Label masks pass `resample=NEAREST` (labels are never blended) and their ignore
    index as `fill`; with the same `size` they land exactly on their image's pixels.

    Returns:
      The square image, the (x, y) scale and the (x, y) offset that map a point of the
      original to the square: `p * scale + offset` (`unletterbox` inverts it).
    """
    h, w, c = image.shape
    nw, nh = max(1, round(w * size / max(h, w))), max(1, round(h * size / max(h, w)))
    resized = image
    if (nh, nw) != (h, w):
        pil = Image.fromarray(image[..., 0] if c == 1 else image)
        resized = np.asarray(pil.resize((nw, nh), resample)).reshape(nh, nw, c)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    out = np.full((size, size, c), fill, np.uint8)
    out[oy:oy + nh, ox:ox + nw] = resized
    return out, np.array([nw / w, nh / h], np.float32), np.array([ox, oy], np.float32)


def unletterbox(boxes: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Maps (..., 4) x0 y0 x1 y1 boxes of a letterboxed square back to the original image."""
    return (boxes - np.tile(offset, 2)) / np.tile(scale, 2)


def unletterbox_mask(mask: np.ndarray, scale: np.ndarray, offset: np.ndarray,
                     size: tuple[int, int], *,
                     resample: Image.Resampling = Image.Resampling.NEAREST) -> np.ndarray:
    """The (h, w) = `size` map of the original image from its letterboxed square's:
    labels (uint8, nearest) or scores (float32, `resample=BILINEAR`)."""
    (ox, oy), (nw, nh) = offset.astype(int), np.round(scale * size[::-1]).astype(int)
    crop = mask[oy:oy + max(nh, 1), ox:ox + max(nw, 1)]
    return np.asarray(Image.fromarray(crop).resize(size[::-1], resample))


def image_info(classes: Sequence[str], images: np.ndarray, spec: str, *,
               dark_background: bool | None = None, **extra) -> dict:
    """The `Dataset.info` of an image data set: what a model and `predict` need to know.
    `dark_background` is measured on `images` unless the caller knows it."""
    if dark_background is None:
        dark_background = bool(images.mean() < 128)
    return {"classes": list(classes), "input_shape": list(images.shape[1:]), "data": spec,
            "dark_background": dark_background, **extra}


def to_unit_range(images):
    """uint8 pixels to float32 in [0, 1]; works on numpy and JAX arrays alike, so batches
    travel as uint8 (4x less to transfer) and are converted on device."""
    return images.astype(np.float32) / 255.0


def match_background(image: np.ndarray, dark_background: bool) -> np.ndarray:
    """Inverts a light-background image for a model trained on dark backgrounds (MNIST)."""
    if dark_background and image.mean() > 127:
        return 255 - image
    return image


def output_paths(inputs: Sequence[str | Path], out: str | Path, suffix: str) -> list[Path]:
    """Where `zoo predict` writes one file per input: `out` itself for a single input,
    else `out/<input stem><suffix>` (the directory is created)."""
    out = Path(out)
    if len(inputs) == 1 and not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    return [out / f"{Path(p).stem}{suffix}" for p in inputs]


def _to_8bit(img: Image.Image, path: Path) -> Image.Image:
    """16-bit and 32-bit integer images scaled to 8 bits (PIL's `convert` clips them)."""
    if img.mode == "F":
        raise ZooError(f"{path}: floating-point image (mode F) has no fixed range; "
                       f"save it as an 8- or 16-bit image")
    if img.mode == "I" or img.mode.startswith("I;16"):
        wide = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(wide * (255 / 65535)), 0, 255).astype(np.uint8))
    return img


def image_folder(root: str | Path, size: Sequence[int], channels: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Loads `root/<class>/<image>` into (images uint8 NHWC, labels int32, class names).

    Raises:
      ZooError: if the folder is missing, has fewer than two classes, or has no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ZooError(f"folder:{root}: no such directory; expected one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ZooError(f"folder:{root}: found {len(classes)} class sub-folder(s); "
                       f"classification needs at least two (one sub-folder per class)")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ZooError(f"folder:{root}: class folder {name!r} has no images "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        for file in files:
            images.append(load_image(file, size, channels))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int32), classes


def letterboxed_input(path: str | Path, size: int, channels: int, dark_background: bool):
    """An image file as a batch of one for a model trained on `size` x `size` squares:
    read, letterboxed, matched to the training images' background, in [0, 1].

    Returns (the image as read, the batch, letterbox scale, letterbox offset): the last
    two map the model's outputs back onto the image (`unletterbox`).
    """
    image = load_image(path, None, channels)
    square, scale, offset = letterbox(image, size)
    return image, to_unit_range(match_background(square, dark_background)[None]), scale, offset

