"""Archive entries: extracted into the cache, malicious members refused on Python 3.11 too."""

import hashlib
import io
import json
import tarfile
import uuid
import zipfile

import pytest

from zoo.errors import ZooError
from zoo.hub import archive, cache, index

from hub_server import HubServer, Route


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    return tmp_path / "home"


def tar_bytes(members, mode="w:gz"):
    """A tar archive of (TarInfo fields, data) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for fields, data in members:
            fields = dict(fields)
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def zip_bytes(members):
    """A zip archive of (name, data, unix mode or None) triples."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


GOOD = [({"name": "weights.safetensors"}, b"w" * 10),
        ({"name": "vocab", "type": tarfile.DIRTYPE}, b""),
        ({"name": "vocab/tokens.txt"}, b"a\nb\n")]


def serve_archive(server, monkeypatch, body, file):
    card = {"task": "t", "model": "m", "tag": "v1", "file": file, "urls": [f"t/{file}"],
            "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    server.routes["/hub/index.json"] = Route(json.dumps({"entries": [card]}).encode())
    server.routes[f"/hub/t/{file}"] = Route(body)
    monkeypatch.setenv("ZOO_HUB", server.url + "/hub")
    hub = index.load()
    return hub, hub.find("t")


def test_archive_entry_is_extracted_into_the_cache(monkeypatch, home):
    server = HubServer()
    try:
        hub, card = serve_archive(server, monkeypatch, tar_bytes(GOOD), "m-v1.tar.gz")
        folder = cache.fetch_card(card, hub.url_of(card))
        assert folder.is_dir() and folder.name == "m-v1" and home in folder.parents
        assert (folder / "vocab" / "tokens.txt").read_bytes() == b"a\nb\n"
        assert cache.fetch_card(card, hub.url_of(card)) == folder
    finally:
        server.stop()


def test_changed_extracted_files_are_detected_and_extracted_again(monkeypatch, home, capfd):
    """The archive's files are hashed into the cache's record and re-verified on every
    use, like single files: an overwritten or added file is noticed and undone offline."""
    server = HubServer()
    try:
        hub, card = serve_archive(server, monkeypatch, tar_bytes(GOOD), "m-v1.tar.gz")
        folder = cache.fetch_card(card, hub.url_of(card))
    finally:
        server.stop()
    record = cache.record_of(folder.parent)["contents"]
    assert record == {"weights.safetensors": hashlib.sha256(b"w" * 10).hexdigest(),
                      "vocab/tokens.txt": hashlib.sha256(b"a\nb\n").hexdigest()}
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    for change in ("overwrite", "add"):
        if change == "overwrite":
            (folder / "weights.safetensors").write_bytes(b"evil" * 3)
        else:
            (folder / "vocab" / "extra.txt").write_bytes(b"x")
        assert cache.fetch_card(card, hub.url_of(card)) == folder
        assert "extracted files of cached t/m:v1 (m-v1.tar.gz) were changed" in capfd.readouterr().err
        assert (folder / "weights.safetensors").read_bytes() == b"w" * 10
        assert not (folder / "vocab" / "extra.txt").exists()


def _outside(tmp_path):
    """A path outside the cache that a malicious member aims at, unique per run."""
    return tmp_path / f"outside-{uuid.uuid4().hex}.txt"


@pytest.mark.parametrize("kind, message", [
    ("dotdot", "points outside"), ("absolute", "absolute path"), ("symlink", "symbolic link"),
    ("hardlink", "hard link"), ("device", "device or special file")])
def test_malicious_tar_served_by_a_hub_is_refused_and_writes_nothing(kind, message, tmp_path,
                                                                     home, monkeypatch):
    target = _outside(tmp_path)
    depth = "../" * 12  # far above the extraction folder, whatever its depth
    evil = {
        "dotdot": [({"name": depth + str(target).lstrip("/")}, b"pwned")],
        "absolute": [({"name": str(target)}, b"pwned")],
        "symlink": [({"name": "link", "type": tarfile.SYMTYPE, "linkname": str(tmp_path)}, b""),
                    ({"name": f"link/{target.name}"}, b"pwned")],
        "hardlink": [({"name": "hard", "type": tarfile.LNKTYPE, "linkname": str(target)}, b"")],
        "device": [({"name": "null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, b"")],
    }[kind]
    server = HubServer()
    try:
        hub, card = serve_archive(server, monkeypatch, tar_bytes(GOOD + evil), "m-v1.tar.gz")
        with pytest.raises(ZooError, match=f"refused, member .*{message}"):
            cache.fetch_card(card, hub.url_of(card))
    finally:
        server.stop()
    assert not target.exists()
    written = [p for p in tmp_path.rglob("*") if home not in p.parents and p != home]
    assert written == [], written
    extracted = [p for p in home.rglob("*") if p.name in ("m-v1", "m-v1.extracting")]
    assert extracted == []  # refused whole: not even the good members


@pytest.mark.parametrize("members, message", [
    ([("../evil.txt", b"x", None)], "points outside"),
    ([("/abs/evil.txt", b"x", None)], "absolute path"),
    ([("C:/evil.txt", b"x", None)], "absolute path"),
    ([("link", b"/etc/passwd", 0o120777)], "symbolic link"),
])
def test_malicious_zip_is_refused(tmp_path, members, message):
    path = tmp_path / "a.zip"
    path.write_bytes(zip_bytes([("ok.txt", b"fine", None), *members]))
    with pytest.raises(ZooError, match=message):
        archive.extract(path, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_good_zip_and_plain_tar_extract(tmp_path):
    (tmp_path / "a.zip").write_bytes(zip_bytes([("d/", b"", None), ("d/f.txt", b"hi", None)]))
    archive.extract(tmp_path / "a.zip", tmp_path / "z")
    assert (tmp_path / "z" / "d" / "f.txt").read_bytes() == b"hi"
    (tmp_path / "a.tar").write_bytes(tar_bytes(list(GOOD), mode="w"))
    archive.extract(tmp_path / "a.tar", tmp_path / "t")
    assert (tmp_path / "t" / "weights.safetensors").read_bytes() == b"w" * 10
