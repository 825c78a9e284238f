"""Reading image files and image folders, with one-line errors for bad files."""

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from zoo.config import Range
from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.batching import Prepared

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
INTERPOLATIONS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                  "bicubic": Image.Resampling.BICUBIC}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input besides its size: timm's `pretrained_cfg`.

    A pretrained weight's card carries it in its config, so predict, eval and
    fine-tuning feed the images as the weights were trained on.
    """

    crop_pct: Annotated[float, Range(0, 1)] = 0.0  # >0: shorter side to size/crop_pct, then centre crop (0: squash)
    interpolation: Literal["bilinear", "bicubic", "nearest"] = "bilinear"
    mean: tuple[float, ...] = ()  # per channel, of [0, 1] pixels (empty: no normalization)
    std: tuple[float, ...] = ()

    def resize(self, image: Image.Image, size: Sequence[int]) -> Image.Image:
        """`image` at (h, w) `size`: squashed, or (crop_pct > 0) resized and centre-cropped
        as timm's eval transform (shorter side to floor(size / crop_pct))."""
        h, w = size
        method = INTERPOLATIONS[self.interpolation]
        if not self.crop_pct:
            return image if image.size == (w, h) else image.resize((w, h), method)
        scale = math.floor(min(h, w) / self.crop_pct) / min(image.size)
        resized = image.resize((max(w, round(image.size[0] * scale)),
                                max(h, round(image.size[1] * scale))), method)
        left, top = (resized.size[0] - w) // 2, (resized.size[1] - h) // 2
        return resized.crop((left, top, left + w, top + h))

    def normalize(self, images):
        """uint8 images to float32 model inputs: [0, 1], then `standardize`. Works on
        numpy and JAX arrays alike (batches travel as uint8 and are converted on device)."""
        return self.standardize(to_unit_range(images))

    def standardize(self, images):
        """[0, 1] images to `(x - mean) / std` (unchanged without a mean). Grey images
        fed to weights trained on colour take the channels' average mean and std."""
        if not self.mean:
            return images
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        if images.shape[-1] == 1:
            mean, std = mean.mean(keepdims=True), std.mean(keepdims=True)
        shape = (1,) * (images.ndim - 1) + (-1,)  # explicit: no implicit rank promotion
        return (images - mean.reshape(shape)) / std.reshape(shape)


def load_image(path: str | Path, size: Sequence[int] | None = None, channels: int = 3,
               preprocess: Preprocess = Preprocess()) -> np.ndarray:
    """Reads an image as uint8 HxWxC, converting mode and optionally resizing to (h, w)
    (squashed, or resized and centre-cropped: see `Preprocess.resize`).

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
        return _pixels(img, size, channels, path, preprocess)


def decode_image(file: BinaryIO, name: str, size: Sequence[int] | None = None,
                 channels: int = 3, preprocess: Preprocess = Preprocess()) -> np.ndarray:
    """`load_image` of an open file, with `name` in its errors (an image stored inside
    another file: a Parquet or Arrow table, a record)."""
    with opened(file, name) as img:
        return _pixels(img, size, channels, name, preprocess)


@contextlib.contextmanager
def opened(file: str | Path | BinaryIO, name: str | None = None) -> Iterator[Image.Image]:
    """`Image.open(file)`, with every way a file can be bad as one `ZooError` naming it
    (`name`, by default the path): corrupt, truncated, or so large it looks like a
    decompression bomb (refused before its pixels are decoded)."""
    name = file if name is None else name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as img:
                yield img
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ZooError(f"{name}: refused, image too large ({e}); shrink it below "
                       f"{Image.MAX_IMAGE_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        raise ZooError(f"{name}: not a readable image (corrupt, or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ZooError(f"{name}: unreadable image ({e}); re-export or remove it") from None


def as_image(item, channels: int = 3, size: Sequence[int] | None = None,
             preprocess: Preprocess = Preprocess()) -> np.ndarray:
    """An image as uint8 (H, W, channels) from whatever a user holds: a path (read as
    `load_image` reads it), a PIL image, or an (H, W) / (H, W, 1|3|4) array of uint8 or
    of floats in [0, 1]; optionally resized to (h, w) as `preprocess.resize` does.

    Raises:
      ZooError: for a file `load_image` refuses, or an array of another shape or range.
    """
    if isinstance(item, (str, Path)):
        return load_image(item, size, channels, preprocess)
    if isinstance(item, Image.Image):
        return _pixels(item, size, channels, "image", preprocess)
    array = np.asarray(item)
    if array.ndim == 3 and array.shape[-1] in (1, 3, 4):
        array = array[..., 0] if array.shape[-1] == 1 else array
    elif array.ndim != 2:
        raise ZooError(f"an image array must be (H, W) or (H, W, 1|3|4), not {array.shape}; "
                       f"pass images one by one or as a list")
    if array.dtype.kind == "f":
        if not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
            raise ZooError("a float image array must hold values in [0, 1]; pass uint8 "
                           "pixels (0..255) or divide by 255")
        array = np.round(array * 255)
    elif array.dtype.kind not in "biu" or array.max(initial=0) > 255 or array.min(initial=0) < 0:
        raise ZooError(f"an image array of {array.dtype} must hold pixels in 0..255")
    return _pixels(Image.fromarray(array.astype(np.uint8)), size, channels, "image", preprocess)


def _pixels(img: Image.Image, size: Sequence[int] | None, channels: int,
            name: str | Path, preprocess: Preprocess) -> np.ndarray:
    """A PIL image as uint8 (H, W, channels), optionally resized to (h, w)."""
    img = _to_8bit(img, name).convert("L" if channels == 1 else "RGB")
    if size is not None:
        img = preprocess.resize(img, size)
    array = np.asarray(img, dtype=np.uint8)
    return array.reshape(array.shape[0], array.shape[1], channels)


def resize(image: np.ndarray, size: Sequence[int],
           preprocess: Preprocess = Preprocess()) -> np.ndarray:
    """An (H, W, C) uint8 image at (h, w), as `load_image` resizes (`Preprocess.resize`:
    squashed, or resized and centre-cropped)."""
    h, w, c = image.shape
    if (h, w) == tuple(size) and not preprocess.crop_pct:
        return image
    pil = preprocess.resize(Image.fromarray(image[..., 0] if c == 1 else image), size)
    return np.asarray(pil).reshape(size[0], size[1], c)


def load_centre_square(item, size: int, crop: float = 1.0) -> np.ndarray:
    """An RGB image's centre square, `crop` times its shorter side, resized to size x size.

    Aligned face photos (CelebA 178x218, LFW 250x250) keep their face in the centre, so
    this is how face models read their inputs (a path, PIL image or array); `as_image`'s
    errors apply.
    """
    image = as_image(item, 3)
    h, w, _ = image.shape
    side = max(1, round(min(h, w) * crop))
    top, left = (h - side) // 2, (w - side) // 2
    square = Image.fromarray(image[top:top + side, left:left + side])
    return np.asarray(square.resize((size, size), Image.Resampling.BILINEAR), np.uint8)


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


def _to_8bit(img: Image.Image, path: str | Path) -> Image.Image:
    """16-bit and 32-bit integer images scaled to 8 bits (PIL's `convert` clips them)."""
    if img.mode == "F":
        raise ZooError(f"{path}: floating-point image (mode F) has no fixed range; "
                       f"save it as an 8- or 16-bit image")
    if img.mode == "I" or img.mode.startswith("I;16"):
        wide = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(wide * (255 / 65535)), 0, 255).astype(np.uint8))
    return img


def image_folder(root: str | Path, size: Sequence[int], channels: int,
                 preprocess: Preprocess = Preprocess()) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Loads `root/<class>/<image>` into memory: (images uint8 NHWC, labels int32, class
    names). For data sets larger than memory, stream them (`zoo.data.ImageFiles`).

    Raises:
      ZooError: as `folder_files`, or naming an unreadable image.
    """
    folders = folder_files(root)
    images, labels = [], []
    for label, files in enumerate(folders.values()):
        for file in files:
            images.append(load_image(file, size, channels, preprocess))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int32), list(folders)


def class_folders(root: str | Path, spec: str = "folder:", least: int = 2,
                  ) -> tuple[list[str], np.ndarray, list[str]]:
    """The images of `root/<class>/<image>` without reading them: (file names relative to
    `root`, int32 labels, class names), sorted by class then name (see `folder_files`)."""
    folders = folder_files(root, "class", spec, least)
    names = [f"{name}/{file.name}" for name, files in folders.items() for file in files]
    labels = np.repeat(np.arange(len(folders), dtype=np.int32), [len(f) for f in folders.values()])
    return names, labels, list(folders)


def folder_files(root: str | Path, kind: str = "class", spec: str = "folder:",
                 least: int = 2) -> dict[str, list[Path]]:
    """The image files of each sub-folder of `root` (one per class or person), sorted.
    One `scandir` per folder: an ImageNet train/ of 1.28M files lists in seconds.

    Raises:
      ZooError: naming `spec`, if the folder is missing, has fewer than `least`
        sub-folders, or one of them has no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ZooError(f"{spec}{root}: no such directory; expected one sub-folder per {kind}")
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if len(names) < least:
        count = {1: "one", 2: "two"}.get(least, least)
        raise ZooError(f"{spec}{root}: found {len(names)} {kind} sub-folder(s); "
                       f"needs at least {count} (one sub-folder per {kind})")
    folders = {}
    for name in names:
        files = sorted(e.name for e in os.scandir(root / name)
                       if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)
        if not files:
            raise ZooError(f"{spec}{root}: {kind} folder {name!r} has no images "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        folders[name] = [root / name / file for file in files]
    return folders


def letterboxed_inputs(items: Sequence, info: dict) -> "list[Prepared]":
    """Images as the "image" inputs of a model trained on the squares `info` describes
    (`letterboxed_input`), each with (its (h, w), scale, offset) as context."""
    from zoo.batching import Prepared  # here: zoo.batching imports JAX, input workers must not

    size, _, channels = info["input_shape"]
    prepared = []
    for item in items:
        image, square, scale, offset = letterboxed_input(item, size, channels,
                                                         info.get("dark_background", False))
        prepared.append(Prepared({"image": square}, (image.shape[:2], scale, offset)))
    return prepared


def letterboxed_input(item, size: int, channels: int, dark_background: bool):
    """An image (a path, PIL image or array: `as_image`) as the uint8 input of a model
    trained on `size` x `size` squares: letterboxed and matched to the training images'
    background.

    Returns (the image as read, the square, letterbox scale, letterbox offset): the last
    two map the model's outputs back onto the image (`unletterbox`).
    """
    image = as_image(item, channels)
    square, scale, offset = letterbox(image, size)
    return image, match_background(square, dark_background), scale, offset

