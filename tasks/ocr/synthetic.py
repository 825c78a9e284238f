"""The embedded OCR data: text lines generated deterministically from a seed.

Two kinds of line, both light ink on a dark background (like MNIST):
- handwritten digit strings, composed from MNIST digits of the embedded sample, each
  split using only its own digits (so no test digit image is ever trained on);
- printed lines (words, prices, dates, receipt items, punctuation) rendered with
  Pillow's built-in font at several sizes and widths, with blur and noise; the texts of
  the three splits are disjoint.
"""

from __future__ import annotations

import string
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HEIGHT = 32
MAX_WIDTH = 256
STRIDE = 4  # line widths are rounded up to a multiple of the model's column stride
ALPHABET = string.digits + string.ascii_letters + " .,:;!?-+/$%#&*()'\""

_WORDS = ("milk bread eggs apples coffee tea rice pasta cheese butter sugar salt soap water "
          "juice beans flour oil tomato onion garlic lemon banana chicken fish yogurt honey "
          "total subtotal cash card change tax tip item qty price receipt store order date "
          "thank you visit again the quick brown fox jumps over lazy dog zoo jax lstm ocr").split()


def handwritten_lines(images: np.ndarray, labels: np.ndarray, count: int,
                      seed: int) -> Iterator[tuple[np.ndarray, str]]:
    """`count` lines of 2 to 8 MNIST digits drawn from `images`, with random gaps and offsets."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        canvas = np.zeros((HEIGHT, MAX_WIDTH), np.uint8)
        x, text = int(rng.integers(0, 6)), ""
        for i in rng.integers(0, len(images), rng.integers(2, 9)):
            digit = _trim_columns(images[i, :, :, 0])
            if x + digit.shape[1] > MAX_WIDTH - 2:
                break
            y = int(rng.integers(0, HEIGHT - digit.shape[0] + 1))
            region = canvas[y:y + digit.shape[0], x:x + digit.shape[1]]
            np.maximum(region, digit, out=region)
            text += str(labels[i])
            x += digit.shape[1] + int(rng.integers(-1, 6))
        yield canvas[:, :_round_up(x + 2)], text


def _trim_columns(digit: np.ndarray) -> np.ndarray:
    """The digit without its empty left and right columns."""
    cols = np.flatnonzero(digit.max(axis=0) > 30)
    return digit[:, cols[0]:cols[-1] + 1] if len(cols) else digit[:, 10:18]


def printed_texts(count: int, seed: int) -> list[str]:
    """`count` distinct receipt-like texts."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    seen = set()
    while len(texts) < count:
        text = _printed_text(rng)
        if text not in seen and 0 < len(text) <= 22:
            seen.add(text)
            texts.append(text)
    return texts


def _printed_text(rng: np.random.Generator) -> str:
    word = lambda: str(rng.choice(_WORDS))  # noqa: E731
    price = lambda: f"{rng.integers(0, 200)}.{rng.integers(0, 100):02d}"  # noqa: E731
    kind = rng.integers(0, 7)
    if kind == 0:
        return f"{word().upper()} {rng.integers(1, 10)} x {price()}"
    if kind == 1:
        return f"{rng.choice(['TOTAL', 'Total', 'CASH', 'TAX', 'Change'])}: ${price()}"
    if kind == 2:
        return f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/{rng.integers(1990, 2031)}"
    if kind == 3:
        return f"{word().capitalize()} {word()} {word()}{rng.choice(list('.,!?;:'))}"
    if kind == 4:
        return f"({rng.integers(100, 1000)}) {rng.integers(100, 1000)}-{rng.integers(1000, 10000)}"
    if kind == 5:
        return f"#{rng.integers(1, 9999)} {word()} {rng.integers(1, 100)}% & \"{word()}\""
    return "".join(rng.choice(list(ALPHABET), rng.integers(3, 16)))


def render(text: str, rng: np.random.Generator) -> np.ndarray:
    """A line image [HEIGHT, width] of `text`: random size, spacing, blur, noise, contrast."""
    font = ImageFont.load_default(size=int(rng.integers(17, 23)))
    scale = rng.uniform(0.9, 1.4)
    spacing = rng.uniform(1.0, 3.0)
    advances = [max(font.getlength(c), 5.0) + spacing for c in text]
    width = int(np.ceil(sum(advances) + 4))
    image = Image.new("L", (width, HEIGHT))
    draw = ImageDraw.Draw(image)
    x, y = 2.0, int(rng.integers(0, 6))
    ink = int(rng.integers(170, 256))
    for char, advance in zip(text, advances):
        draw.text((x, y), char, font=font, fill=ink)
        x += advance
    new_width = min(int(width * scale), MAX_WIDTH)
    image = image.resize((new_width, HEIGHT), Image.Resampling.BILINEAR)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.0, 0.9)))
    pixels = np.zeros((HEIGHT, _round_up(new_width)), np.float32)
    pixels[:, :new_width] = np.asarray(image, np.float32)
    pixels += rng.uniform(0, 50) + rng.normal(0, rng.uniform(0, 18), pixels.shape)  # grey paper
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _round_up(width: int) -> int:
    return min(-(-width // STRIDE) * STRIDE, MAX_WIDTH)
