"""A predict request's body and query as a task's inputs and option values.

The body is one of: an image's bytes (`image/*`, `application/octet-stream`), a
multipart form (each file an input, each other field an option; a text task's inputs
are fields named `inputs`), JSON (`{"inputs": [...], "options": {...}}`, images as
base64 strings or `{"b64": ...}`), or plain text (a text task: one input per line).
Query parameters are options too (`?top_k=3`). Every problem is a `RequestError` that
names it: the client's fault, answered with a 4xx, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import json
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError

from zoo.config import parse_value
from zoo.errors import ZooError
from zoo.task import Task

MAX_PIXELS = 50_000_000  # a decoded image larger than this is refused (decompression bombs)
IMAGE_TYPES = ("image/", "application/octet-stream")
ACCEPTED = ("an image (image/png, image/jpeg, application/octet-stream), multipart/form-data "
            "or application/json")


class RequestError(Exception):
    """A request the server refuses: the HTTP status, the message, a metrics reason."""

    def __init__(self, status: int, message: str, reason: str = "bad_input"):
        super().__init__(message)
        self.status, self.reason = status, reason


WHAT = {"image": "an image", "text": "text", "": "options"}  # what each kind of task takes


def kind(task: Task) -> str:
    """What the task's inputs are: "image", "text", or "" (options only: a GAN)."""
    if not task.inputs:
        return ""
    return "image" if task.inputs.endswith("IMAGE") else "text"


def decode_image(data: bytes, what: str) -> Image.Image:
    """`data` as a decoded PIL image; `what` names it in errors ("the body", "file 2")."""
    if not data:
        raise RequestError(400, f"{what} is empty: send the bytes of a PNG or JPEG image")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise RequestError(413, f"{what} is a {image.width}x{image.height} image; the "
                                    f"limit is {MAX_PIXELS:,} pixels", "too_large")
        image.load()
    except RequestError:
        raise
    except UnidentifiedImageError:
        raise RequestError(400, f"{what} is not an image in a format PIL reads; send a PNG "
                                f"or JPEG") from None
    except Exception as e:  # PIL raises many types for damaged files; all are the client's
        raise RequestError(400, f"{what} is not a readable image ({type(e).__name__}: {e}); "
                                f"send a PNG or JPEG") from None
    return image


def is_small_image(content_type: str, body: bytes, max_bytes: int, max_pixels: int) -> bool:
    """Whether `body` is one image of at most `max_bytes` and `max_pixels` (read from its
    header, not decoded): one a server may decode without leaving the event loop."""
    if not content_type.startswith(IMAGE_TYPES) or not body or len(body) > max_bytes:
        return False
    try:
        with Image.open(io.BytesIO(body)) as image:
            return image.width * image.height <= max_pixels
    except Exception:  # not an image: decode_image names the problem, off the loop
        return False


def from_body(content_type: str, body: bytes, task: Task) -> tuple[list[Any], dict[str, Any]]:
    """The inputs and options of a body that is not a multipart form."""
    expects = kind(task)
    if content_type == "application/json":
        return from_json(body, task)
    if content_type.startswith(IMAGE_TYPES) and expects == "image":
        return [decode_image(body, "the body")], {}
    if content_type == "text/plain" and expects == "text":
        try:
            lines = [line.strip() for line in body.decode("utf-8").splitlines()]
        except UnicodeDecodeError:
            raise RequestError(400, "the body is not UTF-8 text") from None
        return [line for line in lines if line], {}
    if not body and expects == "":
        return [], {}
    wanted = {"image": ACCEPTED, "text": "text/plain (a sentence per line) or application/json",
              "": "application/json or no body (options in the query)"}[expects]
    raise RequestError(415, f"a {task.name} model takes {wanted}, not "
                            f"{content_type or 'a body without a Content-Type'}",
                       "unsupported_type")


def from_json(body: bytes, task: Task) -> tuple[list[Any], dict[str, Any]]:
    """`{"inputs": [...], "options": {...}}`: images base64-encoded, text as strings, a
    GAN's class labels as numbers or names."""
    try:
        data = json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"the body is not valid JSON ({e})") from None
    if not isinstance(data, dict) or set(data) - {"inputs", "options"}:
        raise RequestError(400, 'the JSON body must be an object with "inputs" (a list) and '
                                'optionally "options" (an object)')
    inputs, options = data.get("inputs", []), data.get("options", {})
    if not isinstance(inputs, list) or not isinstance(options, dict):
        raise RequestError(400, '"inputs" must be a list and "options" an object')
    return [_json_input(x, i, task) for i, x in enumerate(inputs)], options


def _json_input(item: Any, index: int, task: Task) -> Any:
    expects, what = kind(task), f"inputs[{index}]"
    if expects == "image":
        encoded = item.get("b64") if isinstance(item, dict) else item
        if not isinstance(encoded, str):
            raise RequestError(400, f'{what} must be a base64 string or {{"b64": ...}}')
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, f"{what} is not valid base64") from None
        return decode_image(data, what)
    if expects == "text" and not isinstance(item, str):
        raise RequestError(400, f"{what} must be a string (a sentence)")
    if expects == "" and (isinstance(item, bool) or not isinstance(item, (int, str))):
        raise RequestError(400, f"{what} must be a class label (a number or a name)")
    return item


def from_form(files: Iterable[tuple[str, bytes]], fields: Iterable[tuple[str, str]],
              task: Task) -> tuple[list[Any], dict[str, Any]]:
    """A multipart form: each file an image, each field an option (a text task's
    sentences are fields named `inputs`)."""
    expects = kind(task)
    inputs: list[Any] = []
    for index, (filename, data) in enumerate(files):
        if expects != "image":
            raise RequestError(400, f"a {task.name} model takes no files (got {filename!r})")
        inputs.append(decode_image(data, f"file {index + 1} ({filename})"))
    options: dict[str, Any] = {}
    for key, value in fields:
        if key == "inputs" and expects in ("text", ""):
            inputs.append(value)
        elif key in options:
            raise RequestError(400, f"option {key} is given twice")
        else:
            options[key] = value
    return inputs, options


def typed_options(task: Task, values: Mapping[str, Any]) -> dict[str, Any]:
    """Option values (query strings, form fields, JSON values) as the types the task's
    `PredictOptions` declares; names and ranges are checked by the predictor."""
    hints = _hints(task.PredictOptions)
    typed = {}
    for name, value in values.items():
        if name not in hints:
            typed[name] = value  # refused by the predictor, with the closest names
            continue
        raw = _as_string(value)
        try:
            typed[name] = parse_value(raw, hints[name], "--" + name)
        except ZooError:
            raise RequestError(400, f"option {name}={raw!r} is not a valid "
                                    f"{_type_name(hints[name])}") from None
    return typed


@functools.cache
def _hints(options_type: type) -> dict[str, Any]:
    return typing.get_type_hints(options_type)  # resolving the annotations costs ~0.1 ms


def _as_string(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(_as_string, value))
    return str(value)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))
