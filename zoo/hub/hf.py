"""`hf://ORG/REPO[@REVISION][/PATH]` addresses, by Hugging Face's own conventions.

Repo ids are checked with `huggingface_hub`'s validator and download URLs built by its
`hf_hub_url`, against `HF_ENDPOINT` (a mirror) read at call time; `HF_TOKEN` (or the
token `hf auth login` stored) is sent to that endpoint only, never to another host and
never printed. The bytes themselves go through zoo's own fetch loop (`fetch.py`), so
they land in zoo's cache with its sha256 check, Range resume and redirect rules.
`huggingface_hub` is imported only when an `hf://` address is used.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from zoo.errors import ZooError

DEFAULT_ENDPOINT = "https://huggingface.co"
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
USAGE = "expected hf://ORG/REPO[@REVISION][/PATH]"


def endpoint() -> str:
    """The Hugging Face site: `HF_ENDPOINT` (a mirror), else huggingface.co."""
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or DEFAULT_ENDPOINT
    if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
        raise ZooError(f"HF_ENDPOINT={value!r}: expected an http(s):// address such as "
                       f"{DEFAULT_ENDPOINT}")
    return value


def parse(url: str) -> tuple[str, str, str]:
    """(repo id, revision, path in the repo) of an `hf://` address, each checked.

    Raises:
      ZooError: a repo id Hugging Face would refuse (`..`, `--`, empty or odd parts), a
        revision that is not a plain branch, tag or commit name, or a path with an
        empty or `..` segment.
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    parts = url.removeprefix("hf://").split("/", 2)
    if len(parts) < 2:
        raise ZooError(f"refused address {url!r}: {USAGE}")
    org, name_rev = parts[0], parts[1]
    name, at, revision = name_rev.partition("@")
    path = parts[2] if len(parts) > 2 else ""
    try:
        validate_repo_id(f"{org}/{name}")
    except HFValidationError:
        raise ZooError(f"refused address {url!r}: {org}/{name!r} is not a Hugging Face repo "
                       f"id (letters, digits and '-_.', no '--' or '..'); {USAGE}") from None
    if at and not (_REVISION.fullmatch(revision) and ".." not in revision):
        raise ZooError(f"refused address {url!r}: revision {revision!r} is not a branch, tag "
                       f"or commit name; {USAGE}")
    segments = path.rstrip("/").split("/") if path.rstrip("/") else []
    if any(s in ("", ".", "..") for s in segments):
        raise ZooError(f"refused address {url!r}: its path has an empty, '.' or '..' segment")
    return f"{org}/{name}", revision or "main", "/".join(segments)


def download_url(url: str, default_file: str = "") -> str:
    """The `resolve` URL of an `hf://` address (`default_file` when it names no file)."""
    from huggingface_hub import hf_hub_url

    repo_id, revision, path = parse(url)
    if not (path or default_file):
        raise ZooError(f"refused address {url!r}: it names no file; {USAGE}")
    return hf_hub_url(repo_id, path or default_file, revision=revision, endpoint=endpoint())


def auth_headers(url: str) -> dict[str, str]:
    """The `Authorization` header of `HF_TOKEN` for a URL on the Hugging Face endpoint
    (private repos); nothing for any other host, or when no token is set."""
    try:
        own_site = _site(url) == _site(endpoint())
    except ZooError:  # a malformed HF_ENDPOINT is reported where hf:// is used, not here
        return {}
    if not own_site:
        return {}
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(library_name="zoo")
    return {"Authorization": headers["authorization"]} if "authorization" in headers else {}


def _site(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()
