"""Where hub files live: local paths, `file://`, `http(s)://` and `hf://` addresses.

Every address a card or an index gives is checked here before use: a `..` segment
(also percent-encoded) is refused outright, and a web hub's cards may only name files
on the hub's own site (same scheme, host and port; `hf://` names the Hugging Face
endpoint), so a hostile index can neither make zoo read local files nor send it to
another host. `hf://` names are checked by Hugging Face's rules (`hf.py`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from zoo.errors import ZooError
from zoo.hub import hf

REMOTE_SCHEMES = ("http", "https")
OFFLINE_VARIABLES = ("ZOO_OFFLINE", "HF_HUB_OFFLINE")  # either one: no network at all
MAX_LENGTH = 2048


def offline_variable() -> str | None:
    """`NAME=VALUE` of the variable that forbids network access, or None when online."""
    for name in OFFLINE_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.lower() in ("1", "true", "yes", "on"):
            return f"{name}={value}"
    return None


def offline() -> bool:
    """True when `ZOO_OFFLINE` or `HF_HUB_OFFLINE` asks for no network at all."""
    return offline_variable() is not None


def check(url: str) -> str:
    """Returns `url` unchanged, or raises if it is over-long or a path segment is `..`."""
    if len(url) > MAX_LENGTH:
        raise ZooError(f"refused address {url[:60]!r}...: longer than {MAX_LENGTH} characters")
    path = unquote(urlsplit(url).path if "://" in url else url).replace("\\", "/")
    if ".." in path.split("/"):
        raise ZooError(f"refused address {url!r}: it contains a '..' path segment")
    if "\0" in path:
        raise ZooError(f"refused address {url!r}: it contains a NUL character")
    return url


def is_remote(url: str) -> bool:
    return urlsplit(url).scheme in REMOTE_SCHEMES


def site(url: str) -> str:
    """`scheme://host:port` of a web address ('' for a local path)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}" if is_remote(url) else ""


def index_url(location: str) -> str:
    """The index file a hub location names: the location itself if it ends in .json,
    else its `index.json`. Folders come back as absolute paths."""
    check(location)
    if location.startswith("hf://"):
        return hf.download_url(location, "index.json")
    if location.startswith("file://"):
        location = urlsplit(location).path
    if location.endswith(".json"):
        return location if is_remote(location) else str(Path(location).expanduser().absolute())
    if is_remote(location):
        return location.rstrip("/") + "/index.json"
    return str(Path(location).expanduser().absolute() / "index.json")


def resolve(url: str, index: str) -> str:
    """An entry's URL made absolute: relative ones are relative to the index's folder.

    Raises:
      ZooError: a `..` segment, an unknown scheme, or, in a web hub's card, an address
        on another site (a `file://` URL, a local path, another host or port).
    """
    address = _absolute(check(url), index)
    if is_remote(index) and site(address) != site(index):
        raise ZooError(f"refused address {url!r} in the hub index {index}: a web hub's "
                       f"cards may only name files on its own site ({site(index)})")
    return address


def _absolute(url: str, index: str) -> str:
    if url.startswith("hf://"):
        return hf.download_url(url)
    if url.startswith("file://"):
        return urlsplit(url).path
    if "://" in url:
        if not is_remote(url):
            raise ZooError(f"refused address {url!r}: only http(s)://, file:// and hf:// "
                           f"addresses or paths relative to the index are allowed")
        return url
    if is_remote(index):
        return urljoin(index, url)
    if Path(url).is_absolute():
        return url
    return str(Path(index).parent / url)
