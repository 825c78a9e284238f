"""The model card: one published weight and everything needed to trust and use it.

A card is one entry of a hub's `index.json`. It pins the file (size and sha256), says
where to get it (mirrors, tried in order), how it was made (task config, library
versions, source, license), how to feed it (`info`: the data-set facts the task's
`build_model` and `predict` read: input shape, classes, background polarity,
vocabulary...) and what it achieved (metrics with their data set and split), so
`zoo eval --pretrained` can check that claim.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from zoo.data import class_lists
from zoo.errors import ZooError
from zoo.hub import urls

FORMAT = 2  # card schema (2: `layout`, weights converted from an upstream layout on load)
LAYOUTS = ("zoo", "timm")  # zoo: variables by path; timm: timm/torchvision state dict
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip")  # longest first
MAX_SIZE = 1 << 40  # bytes of one weight file: 1 TiB
MAX_PARAMS = 10**13
MAX_TEXT = 10_000  # characters of a free-text field (license, source, created)
MAX_MIRRORS = 16


def check_name(kind: str, value: str) -> str:
    """A task, model, tag or file name: letters, digits and `._+-` (at most 128), never `..`."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "..."
        raise ZooError(f"refused {kind} {shown}: names are letters, digits and '._+-', at "
                       f"most 128 of them (no '/', no '..')")
    return value


def check_format(fmt: Any, label: str) -> None:
    """Refuses cards and indexes written by a newer zoo (or malformed)."""
    if not _is_int(fmt) or fmt > FORMAT:
        raise ZooError(f"{label} has format {short_repr(fmt)}; this zoo reads format {FORMAT} "
                       f"(upgrade zoo)")


@dataclass(frozen=True)
class Card:
    """One weights entry (model card). Field order is the order written to index.json."""

    task: str
    model: str
    tag: str
    file: str  # file name in the cache; an archive (.tar.gz, .zip) is extracted
    urls: tuple[str, ...]  # mirrors, tried in order; relative ones are relative to the index
    size: int | None  # bytes
    sha256: str | None  # None: unverified (refused unless --allow-unverified)
    layout: str = "zoo"  # of the weight file; "timm": an upstream state dict, converted on load
    metrics: dict[str, Any] = field(default_factory=dict)  # {"dataset", "split", "values"}
    config: dict[str, Any] = field(default_factory=dict)  # the task config it was trained with
    info: dict[str, Any] = field(default_factory=dict)  # data-set facts; classes by name or list
    params: int | None = None  # trainable parameter count
    versions: dict[str, str] = field(default_factory=dict)  # libraries it was trained with
    plugin: dict[str, str] = field(default_factory=dict)  # the task's distribution and version
    license: str = "unspecified"
    source: str = ""  # who made it and how
    created: str = ""
    format: int = FORMAT

    @property
    def name(self) -> str:
        return f"{self.task}/{self.model}:{self.tag}"

    @property
    def is_archive(self) -> bool:
        return self.file.endswith(ARCHIVE_SUFFIXES)

    def to_json(self) -> dict[str, Any]:
        """The index entry; classes that equal a named list are written as its name."""
        out = dataclasses.asdict(self)
        out["urls"] = list(self.urls)
        named = class_lists.name_of(self.info.get("classes", ()))
        if named:
            out["info"] = {**out["info"], "classes": named}
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> Card:
        """Validates one index entry; `where` names the index in errors.

        Every field is checked for its type and range here, so a malformed card is
        refused in one line when the index is read, never later with a traceback.

        Raises:
          ZooError: a missing or malformed field, a hostile name or URL, or a card
            written by a newer zoo.
        """
        if not isinstance(data, dict):
            raise ZooError(f"{where}: an entry is not a JSON object")
        label = (f"{where}: entry {short_repr(data.get('task'))}/{short_repr(data.get('model'))}:"
                 f"{short_repr(data.get('tag'))}")
        check_format(data.get("format", FORMAT), label)
        missing = {"task", "model", "tag", "file", "urls"} - set(data)
        if missing:
            raise ZooError(f"{label} lacks {', '.join(sorted(missing))}")
        try:
            values = _checked_fields(data)
        except ZooError as e:
            raise ZooError(f"{label}: {e}") from None
        return cls(**values)


def _checked_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The card's fields from an index entry, each checked (unknown keys are ignored)."""
    for kind in ("task", "model", "tag", "file"):
        check_name(kind, data[kind])
    card_urls = data["urls"]
    if not (isinstance(card_urls, list) and 0 < len(card_urls) <= MAX_MIRRORS
            and all(isinstance(u, str) and u for u in card_urls)):
        raise ZooError(f"'urls' must be a list of 1 to {MAX_MIRRORS} addresses (strings)")
    for url in card_urls:
        urls.check(url)
    layout = data.get("layout", "zoo")
    if not (isinstance(layout, str) and layout in LAYOUTS):
        raise ZooError(f"layout {short_repr(layout)} is not one of {', '.join(LAYOUTS)} (upgrade zoo?)")
    sha = data.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        raise ZooError(f"sha256 {short_repr(sha)} is not 64 lowercase hex digits")
    _check_count("size", data.get("size"), MAX_SIZE)
    _check_count("params", data.get("params"), MAX_PARAMS)
    for key in ("metrics", "config", "info", "versions", "plugin"):
        if not isinstance(data.get(key, {}), dict):
            raise ZooError(f"{key!r} must be a JSON object")
    for key in ("versions", "plugin"):
        if not all(isinstance(v, str) for v in data.get(key, {}).values()):
            raise ZooError(f"{key!r} must map names to strings")
    for key in ("license", "source", "created"):
        value = data.get(key, "")
        if not (isinstance(value, str) and len(value) <= MAX_TEXT):
            raise ZooError(f"{key!r} must be a string of at most {MAX_TEXT:,} characters")
    _check_metrics(data.get("metrics", {}))
    known = {f.name for f in dataclasses.fields(Card)}
    values = {k: v for k, v in data.items() if k in known}
    values["urls"] = tuple(card_urls)
    values["info"] = _checked_info(values.get("info", {}))
    return values


def _check_count(key: str, value: Any, limit: int) -> None:
    if value is not None and not (_is_int(value) and 0 <= value <= limit):
        raise ZooError(f"{key} {short_repr(value)} is not a count from 0 to {limit:,}")


def _check_metrics(metrics: dict[str, Any]) -> None:
    """`{"dataset": str, "split": str, "values": {name: finite number}}`, all optional."""
    for key in ("dataset", "split"):
        if not isinstance(metrics.get(key, ""), str):
            raise ZooError(f"metrics' {key!r} must be a string")
    values = metrics.get("values", {})
    if not isinstance(values, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values.values()):
        raise ZooError("metrics' 'values' must map metric names to finite numbers")


def _checked_info(info: dict[str, Any]) -> dict[str, Any]:
    """`info` with `classes` a list of names (a named list, e.g. "imagenet-1k", expanded)."""
    classes = info.get("classes")
    if isinstance(classes, str):
        try:
            return {**info, "classes": class_lists.resolve(classes)}
        except ZooError as e:
            raise ZooError(f"{e} (upgrade zoo?)") from None
    if classes is not None and not (isinstance(classes, list) and all(
            isinstance(c, str) for c in classes)):
        raise ZooError("info's 'classes' must be a list of names or the name of a class list")
    return info


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def short_repr(value: Any) -> str:
    """A value for a message: its repr, cut at 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."
