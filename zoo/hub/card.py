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
import re
from dataclasses import dataclass, field
from typing import Any

from zoo.data import class_lists
from zoo.errors import ZooError
from zoo.hub import urls

FORMAT = 2  # card schema (2: `layout`, weights converted from an upstream layout on load)
LAYOUTS = ("zoo", "timm")  # zoo: variables by path; timm: timm/torchvision state dict
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip")  # longest first


def check_name(kind: str, value: str) -> str:
    """A task, model, tag or file name: letters, digits and `._+-`, never `..`."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise ZooError(f"refused {kind} {value!r}: names are letters, digits and '._+-' "
                       f"(no '/', no '..')")
    return value


def check_format(fmt: Any, label: str) -> None:
    """Refuses cards and indexes written by a newer zoo (or malformed)."""
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise ZooError(f"{label} has format {fmt!r}; this zoo reads format {FORMAT} "
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

        Raises:
          ZooError: a missing or malformed field, a hostile name or URL, or a card
            written by a newer zoo.
        """
        if not isinstance(data, dict):
            raise ZooError(f"{where}: an entry is not a JSON object")
        label = f"{where}: entry {data.get('task')}/{data.get('model')}:{data.get('tag')}"
        check_format(data.get("format", FORMAT), label)
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {"task", "model", "tag", "file", "urls"} - set(data)
        if missing:
            raise ZooError(f"{label} lacks {', '.join(sorted(missing))}")
        for kind in ("task", "model", "tag", "file"):
            check_name(kind, data[kind])
        card_urls = data["urls"]
        if not isinstance(card_urls, list) or not card_urls or not all(
                isinstance(u, str) for u in card_urls):
            raise ZooError(f"{label}: 'urls' must be a non-empty list of strings")
        for url in card_urls:
            urls.check(url)
        if data.get("layout", "zoo") not in LAYOUTS:
            raise ZooError(f"{label}: layout {data['layout']!r} is not one of "
                           f"{', '.join(LAYOUTS)} (upgrade zoo?)")
        sha = data.get("sha256")
        if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            raise ZooError(f"{label}: sha256 {sha!r} is not 64 lowercase hex digits")
        for key in ("metrics", "config", "info", "versions", "plugin"):
            if not isinstance(data.get(key, {}), dict):
                raise ZooError(f"{label}: {key!r} must be a JSON object")
        size = data.get("size")
        if size is not None and not (isinstance(size, int) and size >= 0):
            raise ZooError(f"{label}: size {size!r} is not a byte count")
        values = {k: v for k, v in data.items() if k in known}
        values["urls"] = tuple(card_urls)
        if isinstance(values.get("info", {}).get("classes"), str):  # e.g. "imagenet-1k"
            try:
                classes = class_lists.resolve(values["info"]["classes"])
            except ZooError as e:
                raise ZooError(f"{label}: {e} (upgrade zoo?)") from None
            values["info"] = {**values["info"], "classes": classes}
        return cls(**values)
