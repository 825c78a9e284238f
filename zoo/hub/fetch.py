"""Fetching one file from its mirrors: resumable, size- and hash-checked, atomic.

HTTP goes through `requests` with `trust_env` on (its default), so the proxies of
`HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` and the CA bundles of `REQUESTS_CA_BUNDLE` and
`CURL_CA_BUNDLE` are honoured; `SSL_CERT_FILE` (OpenSSL's own, which pip and urllib
read) is added here. Redirects are followed by hand so that a downgrade from https to
http, or a `..` in the new address, is refused. Local paths and `file://` addresses go
through the same loop, so a folder hub behaves exactly as a web one. Requests to the
Hugging Face endpoint carry `HF_TOKEN` (`hf.auth_headers`); a redirect to another site
drops it.

`requests` is imported only when a remote address is actually fetched: with
`ZOO_OFFLINE=1` (or `HF_HUB_OFFLINE=1`) nothing here opens a socket.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from zoo.errors import ZooError
from zoo.hub import hf, urls
from zoo.io.files import sha256_file

CHUNK = 1 << 16
MAX_REDIRECTS = 5
RETRY_STATUSES = (429, 500, 502, 503, 504)  # worth one more try after a pause
RETRIES = 2
MAX_RETRY_AFTER_S = 10.0


class MirrorError(Exception):
    """One address failed; the next mirror is tried."""


class Interrupted(Exception):
    """A response body stopped coming: a dropped connection or a read timeout."""


@dataclass(frozen=True)
class Target:
    """What a download must produce: the final path, its size and sha256, a label."""

    dest: Path
    size: int | None
    sha256: str | None
    label: str  # e.g. "classification/lenet:v1 (lenet-v1.safetensors)", for messages

    @property
    def part(self) -> Path:
        """The partial file: kept when a connection drops, resumed with HTTP Range."""
        return self.dest.with_name(self.dest.name + ".part")


def timeout_s() -> float:
    """Seconds to wait for a connection or for the next bytes (`ZOO_HUB_TIMEOUT`)."""
    raw = os.environ.get("ZOO_HUB_TIMEOUT", "30")
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ZooError(f"ZOO_HUB_TIMEOUT={raw!r}: expected a positive number of seconds")
    return value


def download(addresses: Sequence[str], target: Target) -> None:
    """Fetches `target` from the first mirror that delivers the right bytes.

    Bytes go to `target.part` and are renamed to `target.dest` only when size and
    sha256 match; a part cut short by a dropped connection is kept and resumed (from
    this or the next mirror). The caller holds the file's lock.

    Raises:
      ZooError: naming the file and what each mirror did (truncated, hash mismatch,
        HTTP status, timeout, refused redirect, offline), with what to do about it.
    """
    failures = []
    for address in addresses:
        if urls.is_remote(address) and urls.offline():
            failures.append(f"{address}: not tried, {urls.offline_variable()} forbids "
                            f"network access")
            continue
        try:
            _fetch_one(address, target)
        except MirrorError as e:
            failures.append(f"{address}: {e}")
            continue
        digest = sha256_file(target.part)
        if target.sha256 is not None and digest != target.sha256:
            target.part.unlink()
            failures.append(f"{address}: sha256 mismatch (got {digest[:16]}..., the card "
                            f"says {target.sha256[:16]}...): not the published file, discarded")
            continue
        os.replace(target.part, target.dest)
        return
    raise ZooError(f"could not fetch {target.label}: " + "; ".join(failures))


def read_bytes(address: str, *, limit: int = 16 << 20) -> bytes:
    """A small file (a hub index) read whole into memory, at most `limit` bytes."""
    if not urls.is_remote(address):
        if not Path(address).is_file():
            raise MirrorError("no such file")
        return Path(address).read_bytes()
    response = _get(address, {})
    with response:
        if response.status_code != 200:
            raise MirrorError(f"HTTP {response.status_code}")
        try:
            data = b"".join(_chunks(response, limit + 1))
        except Interrupted as e:
            raise MirrorError(f"the download broke off ({e})") from None
    if len(data) > limit:
        raise MirrorError(f"larger than {limit >> 20} MiB; not a hub index")
    return data


def _fetch_one(address: str, target: Target) -> None:
    """Appends to (or restarts) `target.part` from one address until it is complete."""
    part = target.part
    offset = part.stat().st_size if part.exists() else 0
    if target.size is not None and offset > target.size:
        offset = 0
    if target.size is not None and offset == target.size:
        return  # complete, not yet verified (stopped between download and rename)
    announced = None  # the total size the server says it is sending
    if urls.is_remote(address):
        offset, announced, chunks = _open_http(address, offset)
        if announced is not None and target.size is not None and announced > target.size:
            raise MirrorError(f"the server announces {announced:,} bytes but the card says "
                              f"{target.size:,}: not the published file")
        print(f"zoo: downloading {target.label} from {urlsplit(address).netloc}"
              + (f" (resuming at byte {offset:,})" if offset else ""), file=sys.stderr)
    else:
        chunks = _open_file(address, offset)
    expected = target.size if target.size is not None else announced
    received = offset
    with open(part, "r+b" if offset else "wb") as f:
        f.seek(offset)
        f.truncate()
        try:
            for chunk in chunks:
                received += len(chunk)
                if expected is not None and received > expected:
                    raise MirrorError(f"sent more than the expected {expected:,} bytes")
                f.write(chunk)
        except MirrorError:
            f.close()
            part.unlink()
            raise
        except Interrupted as e:
            f.flush()
            raise MirrorError(_interrupted(e, received, expected)) from None
        f.flush()
        os.fsync(f.fileno())
    if expected is not None and received < expected:
        told = (f" (the server announced only {announced:,})"
                if announced is not None and announced < expected else "")
        raise MirrorError(f"download truncated: received {received:,} of {expected:,} "
                          f"bytes{told}; the partial file is kept, run the same command "
                          f"again to resume")


def _interrupted(error: Interrupted, received: int, size: int | None) -> str:
    of = f" of {size:,}" if size is not None else ""
    cause = (f"no data for {timeout_s():.0f} s (timed out)" if "timed out" in str(error).lower()
             else "the connection dropped")
    return (f"download truncated: {cause} after {received:,}{of} bytes; the partial file "
            f"is kept, run the same command again to resume")


def _open_file(path: str, offset: int) -> Iterator[bytes]:
    if not Path(path).is_file():
        raise MirrorError("no such file")

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as f:
            f.seek(offset)
            yield from iter(lambda: f.read(CHUNK), b"")

    return chunks()


def _open_http(url: str, offset: int) -> tuple[int, int | None, Iterator[bytes]]:
    """GETs `url` from byte `offset` (HTTP Range) when the server allows it.

    Returns:
      The offset the body starts at (0 when the server ignored the Range), the total
      size the server announced (or None), and the body's chunks.
    """
    response = _get(url, {"Range": f"bytes={offset}-"} if offset else {})
    status = response.status_code
    if status == 416 and offset:  # the part is stale: start over
        response.close()
        return _open_http(url, 0)
    if status == 206:
        start, total = _content_range(response.headers.get("Content-Range", ""))
        if start != offset:
            response.close()
            raise MirrorError(f"answered a Range request for byte {offset:,} from byte {start}")
        return offset, total, _chunks(response)
    if status == 200:
        length = response.headers.get("Content-Length")
        return 0, int(length) if length and length.isdigit() else None, _chunks(response)
    response.close()
    raise MirrorError(f"HTTP {status}" + (" (not found)" if status == 404 else ""))


def _content_range(header: str) -> tuple[int | None, int | None]:
    """`bytes START-END/TOTAL` to (START, TOTAL); Nones where absent or malformed."""
    unit, _, spec = header.partition(" ")
    span, _, total = spec.partition("/")
    start = span.partition("-")[0]
    if unit != "bytes" or not start.isdigit():
        return None, None
    return int(start), int(total) if total.isdigit() else None


def _chunks(response, limit: int | None = None) -> Iterator[bytes]:
    """A response's body; `Interrupted` if it stops coming (timeout, dropped connection)."""
    import requests

    with response:
        received = 0
        try:
            for chunk in response.iter_content(CHUNK):
                yield chunk
                received += len(chunk)
                if limit is not None and received >= limit:
                    return
        except requests.RequestException as e:
            raise Interrupted(_reason(e)) from None


def _get(url: str, headers: dict[str, str]):
    """A streaming GET that follows redirects by hand and retries 429/5xx after a pause.

    Raises:
      MirrorError: on a refused redirect, too many redirects, or a network error.
    """
    import requests

    from zoo import __version__

    session = requests.Session()
    # "Connection: close": each request (after a redirect, a 503, a resume) opens its own
    # connection, never a kept-alive one that the server may be closing at that moment.
    headers = {"User-Agent": f"zoo/{__version__}", "Accept-Encoding": "identity",
               "Connection": "close", **headers, **hf.auth_headers(url)}
    redirects = retries = 0
    while True:
        try:
            response = session.get(url, headers=headers, stream=True, allow_redirects=False,
                                   timeout=(timeout_s(), timeout_s()), verify=_verify())
        except requests.exceptions.Timeout:
            raise MirrorError(f"no answer within {timeout_s():.0f} s (timed out); check the "
                              f"network or proxy, or raise ZOO_HUB_TIMEOUT") from None
        except requests.exceptions.SSLError as e:
            raise MirrorError(f"TLS error ({_reason(e)}); for a private CA set "
                              f"REQUESTS_CA_BUNDLE or SSL_CERT_FILE") from None
        except requests.exceptions.RequestException as e:
            raise MirrorError(f"cannot connect ({_reason(e)})") from None
        if response.is_redirect:
            response.close()
            redirects += 1
            if redirects > MAX_REDIRECTS:
                raise MirrorError(f"more than {MAX_REDIRECTS} redirects")
            target = next_url(url, response.headers["Location"])
            if urls.site(target) != urls.site(url):
                headers.pop("Authorization", None)  # a token is for its own site only
            url = target
            continue
        if response.status_code in RETRY_STATUSES and retries < RETRIES:
            response.close()
            retries += 1
            time.sleep(_retry_after(response.headers.get("Retry-After"), retries))
            continue
        return response


def next_url(current: str, location: str) -> str:
    """Where a redirect leads, refusing https-to-http downgrades and `..` segments."""
    target = urljoin(current, location)
    if urlsplit(current).scheme == "https" and urlsplit(target).scheme != "https":
        raise MirrorError(f"refused redirect from https to {urlsplit(target).scheme} "
                          f"({target}): it would drop transport security")
    if not urls.is_remote(target):
        raise MirrorError(f"refused redirect to {target}")
    try:
        urls.check(location)  # before urljoin folds the '..' away
    except ZooError as e:
        raise MirrorError(str(e)) from None
    return target


def _retry_after(header: str | None, attempt: int) -> float:
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER_S)
    except (TypeError, ValueError):
        return min(2.0 ** attempt, MAX_RETRY_AFTER_S)


def _verify() -> bool | str:
    """requests itself reads REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE; SSL_CERT_FILE is
    honoured too, below them."""
    if os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"):
        return True
    return os.environ.get("SSL_CERT_FILE") or True


def _reason(error: Exception) -> str:
    """The useful words of a requests error (which nests urllib3's and the OS's)."""
    found = re.search(r"(\[Errno -?\d+\] |certificate verify failed|timed out)[^'\"()]*",
                      str(error))
    return found.group(0).strip() if found else type(error).__name__
