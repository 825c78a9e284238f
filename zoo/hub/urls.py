"""Where hub files live: local paths, `file://`, `http(s)://` and `hf://` addresses.

Every address a card or an index gives is checked here before use: a `..` segment
(also percent-encoded) is refused outright, so neither a hostile index nor a hostile
redirect can point outside the folder or site it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from zoo.errors import ZooError

REMOTE_SCHEMES = ("http", "https")
HF_ENDPOINT = "https://huggingface.co"


def offline() -> bool:
    """True when `ZOO_OFFLINE` asks for no network at all (cache and local files only)."""
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def check(url: str) -> str:
    """Returns `url` unchanged, or raises if any of its path segments is `..`."""
    path = unquote(urlsplit(url).path if "://" in url else url).replace("\\", "/")
    if ".." in path.split("/"):
        raise ZooError(f"refused address {url!r}: it contains a '..' path segment")
    return url


def is_remote(url: str) -> bool:
    return urlsplit(url).scheme in REMOTE_SCHEMES


def from_hf(url: str) -> str:
    """`hf://org/repo[@revision]/path` to its Hugging Face download (`resolve`) URL.

    `HF_ENDPOINT` selects a mirror of huggingface.co, as it does for huggingface_hub.
    """
    rest = url.removeprefix("hf://").strip("/")
    parts = rest.split("/", 2)
    if len(parts) < 2 or not all(parts[:2]):
        raise ZooError(f"{url!r}: expected hf://ORG/REPO[@REVISION][/PATH]")
    org, repo = parts[0], parts[1]
    repo, _, revision = repo.partition("@")
    path = parts[2] if len(parts) > 2 else ""
    endpoint = os.environ.get("HF_ENDPOINT", HF_ENDPOINT).rstrip("/")
    return f"{endpoint}/{org}/{repo}/resolve/{revision or 'main'}/{path}"


def index_url(location: str) -> str:
    """The index file a hub location names: the location itself if it ends in .json,
    else its `index.json`. Folders come back as absolute paths."""
    check(location)
    if location.startswith("hf://"):
        location = from_hf(location)
    elif location.startswith("file://"):
        location = urlsplit(location).path
    if location.endswith(".json"):
        return location if is_remote(location) else str(Path(location).expanduser().absolute())
    if is_remote(location):
        return location.rstrip("/") + "/index.json"
    return str(Path(location).expanduser().absolute() / "index.json")


def resolve(url: str, index: str) -> str:
    """An entry's URL made absolute: relative ones are relative to the index's folder."""
    check(url)
    if url.startswith("hf://"):
        return from_hf(url)
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
