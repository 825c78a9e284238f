"""Hub indexes: their model cards, read from a folder, file://, http(s):// or hf://.

`ZOO_HUB` lists the hubs to search, in order, separated by commas; the one embedded in
the package is always searched last. An index is `{"format": 1, "entries": [card,
...]}`; any static file server can host it with the weight files beside it. A remote
index is kept in the cache after each successful read: offline (`ZOO_OFFLINE=1` or
`HF_HUB_OFFLINE=1`), or when the host is down, that copy is used.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError, unknown
from zoo.hub import cache, fetch, urls
from zoo.hub.card import FORMAT, Card, check_format

EMBEDDED = Path(__file__).parent / "embedded"


MAX_INDEX_BYTES = 16 << 20


def locations() -> list[str]:
    """The hubs to search, in order: `ZOO_HUB`'s comma-separated list, then the embedded one."""
    listed = [part.strip() for part in os.environ.get("ZOO_HUB", "").split(",") if part.strip()]
    embedded = str(EMBEDDED)
    return [*(place for place in listed if urls.index_url(place) != urls.index_url(embedded)),
            embedded]


@dataclass(frozen=True)
class Index:
    """The cards of one or more hubs, first hub first; `urls` are their index files'
    addresses (each card's entries are relative to its own, `url_of`)."""

    urls: tuple[str, ...]
    cards: tuple[Card, ...]
    origins: tuple[str, ...] = ()  # the index URL of each card (default: the only one)

    @property
    def url(self) -> str:
        """The hubs, for messages."""
        return ", ".join(self.urls)

    def url_of(self, card: Card) -> str:
        """The index file `card` came from: its relative URLs are relative to it."""
        origins = self.origins or self.urls * len(self.cards)
        return origins[self.cards.index(card)]

    def matching(self, pattern: str = "*") -> list[Card]:
        """Cards whose `task/model:tag` matches a wildcard pattern."""
        return [c for c in self.cards if fnmatch.fnmatch(c.name, pattern)]

    def find(self, task: str, model: str | None = None, tag: str | None = None) -> Card:
        """The first card of `task` (and `model`, `tag` when given): index order decides.

        Raises:
          ZooError: nothing published for that task, model or tag, naming what is.
        """
        cards = [c for c in self.cards if c.task == task]
        if not cards:
            tasks = sorted({c.task for c in self.cards})
            raise ZooError(f"no published weights for task {task!r} in hub {self.url}"
                           + (f"; tasks with weights: {', '.join(tasks)}" if tasks else ""))
        if model is not None:
            models = {c.model for c in cards}
            cards = [c for c in cards if c.model == model]
            if not cards:
                raise unknown(f"pretrained model for {task}:", model, models)
        if tag is not None:
            tags = {c.tag for c in cards}
            cards = [c for c in cards if c.tag == tag]
            if not cards:
                raise unknown(f"tag for {task}/{model or '*'}:", tag, tags)
        return cards[0]


def load(where: str | None = None) -> Index:
    """Reads and validates the index of hub `where` (default: every hub of `locations()`,
    merged: a name in two hubs is the first one's).

    Raises:
      ZooError: an unreadable or malformed index (naming it), or a remote one that is
        neither reachable nor cached.
    """
    if where is not None:
        return _load_one(where)
    hubs = [_load_one(place) for place in locations()]
    cards, origins, seen = [], [], set()
    for hub in hubs:
        for card in hub.cards:
            if card.name not in seen:
                seen.add(card.name)
                cards.append(card)
                origins.append(hub.urls[0])
    return Index(tuple(h.urls[0] for h in hubs), tuple(cards), tuple(origins))


def _load_one(where: str) -> Index:
    url = urls.index_url(where)
    raw = _read_remote(url) if urls.is_remote(url) else _read_local(url)
    return parse(raw, url)


def parse(raw: bytes, url: str) -> Index:
    """Validates an index file's bytes.

    Raises:
      ZooError: one line naming the index and what is wrong (not JSON, a malformed
        card, a name listed twice).
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON, bytes or huge ints
        raise ZooError(f"hub index {url}: not valid JSON ({str(e)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ZooError(f"hub index {url}: expected {{\"format\": {FORMAT}, \"entries\": [...]}}")
    check_format(data.get("format", FORMAT), f"hub index {url}")
    cards = tuple(Card.from_json(entry, f"hub index {url}") for entry in data["entries"])
    names = [c.name for c in cards]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ZooError(f"hub index {url} lists {', '.join(duplicates)} more than once")
    return Index((url,), cards)


def add(hub_dir: Path, card: Card, *, force: bool = False) -> Path:
    """Adds (or with `force`, replaces) a card in a folder hub's index.json.

    Raises:
      ZooError: the name is taken and `force` is off.
    """
    from zoo.io.files import write_json

    path = hub_dir / "index.json"
    cards = list(parse(path.read_bytes(), str(path)).cards) if path.exists() else []
    taken = [i for i, c in enumerate(cards) if c.name == card.name]
    if taken and not force:
        raise ZooError(f"{path} already has {card.name}; choose another --tag, or pass "
                       f"--force to replace it")
    if taken:
        cards[taken[0]] = card
    else:
        cards.append(card)
    write_json(path, {"format": FORMAT, "entries": [c.to_json() for c in cards]})
    return path


def _read_local(path: str) -> bytes:
    if not Path(path).is_file():
        raise ZooError(f"hub index {path}: no such file; set ZOO_HUB to folders holding "
                       f"index.json, file://, http(s):// or hf://ORG/REPO addresses")
    if Path(path).stat().st_size > MAX_INDEX_BYTES:
        raise ZooError(f"hub index {path}: larger than {MAX_INDEX_BYTES >> 20} MiB; not a "
                       f"hub index")
    return Path(path).read_bytes()


def _read_remote(url: str) -> bytes:
    """Fetches a remote index, keeping a copy; falls back to the copy when offline or down."""
    copy = cache.index_copy(url)
    if urls.offline():
        if copy.is_file():
            return copy.read_bytes()
        raise ZooError(f"{urls.offline_variable()} and the hub index {url} has never been "
                       f"fetched; run `zoo hub list` once with network access, or drop it "
                       f"from ZOO_HUB")
    try:
        raw = fetch.read_bytes(url, limit=MAX_INDEX_BYTES)
    except fetch.MirrorError as e:
        if not copy.is_file():
            raise ZooError(f"cannot read the hub index {url}: {e}") from None
        print(f"zoo: warning: cannot read the hub index {url} ({e}); using the copy "
              f"cached at {copy}", file=sys.stderr)
        return copy.read_bytes()
    parse(raw, url)  # never cache a broken index
    copy.parent.mkdir(parents=True, exist_ok=True)
    tmp = copy.with_name(copy.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, copy)
    return raw
