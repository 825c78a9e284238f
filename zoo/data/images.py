"""Reading image files and image folders, with one-line errors for bad files."""

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from zoo.errors import ZooError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def load_image(path: str | Path, size: Sequence[int] | None = None, channels: int = 3) -> np.ndarray:
    """Reads an image as uint8 HxWxC, converting mode and optionally resizing to (h, w).

    Raises:
      ZooError: naming the file, if it is missing, empty, truncated, corrupt, or so large
        it looks like a decompression bomb.
    """
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise ZooError(f"{path}: empty file, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img = img.convert("L" if channels == 1 else "RGB")
                if size is not None and img.size != (size[1], size[0]):
                    img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ZooError(f"{path}: refused, image too large ({e})") from None
    except UnidentifiedImageError:
        raise ZooError(f"{path}: not a readable image (corrupt, or an unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ZooError(f"{path}: unreadable image ({e}); re-export or remove it") from None
    return array.reshape(array.shape[0], array.shape[1], channels)


def to_dark_background(image: np.ndarray) -> np.ndarray:
    """Inverts a mostly light image, so ink is bright on dark (as in MNIST)."""
    return 255 - image if image.mean() > 127 else image


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
