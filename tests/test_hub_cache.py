"""Several hubs searched in order (`ZOO_HUB=a,b`, the embedded one last) and `zoo hub
cache` (list, sizes, last use, prune), in-process on folder hubs: no network."""

import hashlib
import json
import os
import time

import pytest

from zoo.cli.main import main
from zoo.hub import cache, index


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    for name in ("ZOO_HUB", "ZOO_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def folder_hub(folder, files: dict[str, bytes]):
    """A folder hub with one card `t/m:TAG` per (tag, bytes)."""
    (folder / "t").mkdir(parents=True)
    entries = []
    for tag, body in files.items():
        (folder / "t" / f"m-{tag}.bin").write_bytes(body)
        entries.append({"task": "t", "model": "m", "tag": tag, "file": f"m-{tag}.bin",
                        "urls": [f"t/m-{tag}.bin"], "size": len(body),
                        "sha256": hashlib.sha256(body).hexdigest()})
    (folder / "index.json").write_text(json.dumps({"entries": entries}))
    return folder


def zoo(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hubs_are_searched_in_order_with_the_embedded_one_last(tmp_path, monkeypatch, capsys):
    first = folder_hub(tmp_path / "first", {"v1": b"first v1"})
    second = folder_hub(tmp_path / "second", {"v1": b"second v1", "v2": b"second v2"})
    monkeypatch.setenv("ZOO_HUB", f"{first}, {second}")
    hub = index.load()
    assert hub.urls == (str(first / "index.json"), str(second / "index.json"),
                        str(index.EMBEDDED / "index.json"))
    for tag, body in (("v1", b"first v1"), ("v2", b"second v2")):
        card = hub.find("t", "m", tag)
        assert cache.fetch_card(card, hub.url_of(card)).read_bytes() == body
    assert hub.find("classification").name == "classification/lenet:mnist-sample"
    code, out, _ = zoo(capsys, "hub", "list", "t/*")
    assert code == 0 and "hubs, searched in order" in out and "t/m:v2" in out
    monkeypatch.setenv("ZOO_HUB", str(index.EMBEDDED))  # named again: searched once
    assert index.load().urls == (str(index.EMBEDDED / "index.json"),)


def test_hub_cache_lists_and_prunes(tmp_path, monkeypatch, capsys, home):
    hub_dir = folder_hub(tmp_path / "hub", {"v1": b"one" * 1000, "v2": b"two" * 2000})
    monkeypatch.setenv("ZOO_HUB", str(hub_dir))
    for tag in ("v1", "v2"):
        assert zoo(capsys, "pull", f"t/m:{tag}")[0] == 0
    code, out, _ = zoo(capsys, "hub", "cache", "--json")
    listed = json.loads(out)
    assert code == 0 and [e["name"] for e in listed["entries"]] == ["t/m:v1", "t/m:v2"]
    assert listed["total_size"] == sum(e["size"] for e in listed["entries"]) > 9000
    v1, v2 = (cache.path_of(index.load().find("t", "m", tag)) for tag in ("v1", "v2"))
    month_ago = time.time() - 31 * 86400
    os.utime(v1.parent / cache.RECORD, (month_ago, month_ago))  # last used a month ago
    v2.write_bytes(b"rot" * 2000)  # same size, other bytes
    code, out, _ = zoo(capsys, "hub", "cache", "--verify")
    assert code == 0 and "31 days ago" in out and "sha256 mismatch" in out and "2 entries" in out

    code, out, _ = zoo(capsys, "hub", "cache", "prune", "--corrupt", "--dry-run")
    assert code == 0 and "would delete t/m:v2" in out and v2.exists()
    code, out, _ = zoo(capsys, "hub", "cache", "prune", "--older-than", "30", "--json")
    deleted = json.loads(out)["deleted"]
    assert [(e["name"], e["reason"]) for e in deleted] == [("t/m:v1", "unused for 31 days")]
    assert not v1.parent.exists() and v2.exists()

    (hub_dir / "index.json").write_text(json.dumps({"entries": []}))  # v2 unpublished
    code, out, _ = zoo(capsys, "hub", "cache", "prune", "--unreferenced")
    assert code == 0 and "deleted t/m:v2" in out and "not in any current hub" in out
    assert not (home / "hub" / "weights" / "t").exists()  # empty folders go too
    code, _, err = zoo(capsys, "hub", "cache", "prune")
    assert code == 2 and "say what to delete" in err
