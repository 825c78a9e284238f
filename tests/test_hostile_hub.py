"""Hostile hubs, table-driven: every case exits 2 with one line, caches nothing usable
and writes nothing outside the cache.

A loopback server (`hub_server.HubServer`) plays the hub; each case publishes an index
(and a file) on it, or points `ZOO_HUB`/`HF_ENDPOINT` somewhere hostile, then runs `zoo`
in-process and checks: exit code 2, exactly one `zoo: error:` line on stderr, no
traceback, the expected words, no file under $ZOO_HOME/hub/weights (nothing cached as
verified), and every file outside the cache as it was. Never the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.cli.main import main
from zoo.hub import archive, cache, index

from hub_server import HubServer, Route

EMBEDDED = index.load(str(index.EMBEDDED))
LENET = EMBEDDED.find("classification", "lenet", "mnist-sample")
SAFE = b"weights " * 8  # any bytes: cases that pass the card never get to read them


@pytest.fixture(scope="module")
def server():
    s = HubServer()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def environment(tmp_path, monkeypatch, server):
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token of the user's
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "20")
    for name in ("ZOO_OFFLINE", "HF_HUB_OFFLINE", "HF_TOKEN", "HF_ENDPOINT", "ZOO_HUB"):
        monkeypatch.delenv(name, raising=False)
    server.routes.clear()


def card(body: bytes = SAFE, file: str = "m-v1.bin", **fields) -> dict:
    return {"task": "t", "model": "m", "tag": "v1", "file": file, "urls": [f"t/{file}"],
            "size": len(body), "sha256": hashlib.sha256(body).hexdigest(), **fields}


def publish(where: HubServer | Path, entries: list | bytes, files: dict[str, bytes] = (),
            prefix: str = "/hub") -> dict[str, str]:
    """An index (entries, or raw bytes) and files, served by the loopback server or
    written into a folder hub; the environment that uses it."""
    raw = entries if isinstance(entries, bytes) else json.dumps(
        {"format": 2, "entries": entries}).encode()
    if isinstance(where, Path):
        (where / "t").mkdir(parents=True, exist_ok=True)
        (where / "index.json").write_bytes(raw)
        for name, body in dict(files).items():
            (where / "t" / name).write_bytes(body)
        return {"ZOO_HUB": str(where)}
    where.routes[f"{prefix}/index.json"] = Route(raw)
    for name, body in dict(files).items():
        where.routes[f"{prefix}/t/{name}"] = Route(body)
    return {"ZOO_HUB": where.url + prefix}


def folder_card(folder: Path, *, body: bytes, file: str, **fields):
    """A one-card folder hub holding `body` as `file` under a correct sha256 (a folder:
    a download from a web hub would add its progress line to stderr)."""
    return publish(folder, [card(body, file, **fields)], {file: body})


def tar_gz(members: list[tuple[str, bytes]], *, kind: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if kind is not None:
                info.type = kind
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def bad_crc_zip() -> bytes:
    """A zip whose one stored (uncompressed) member has a flipped byte."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("weights.safetensors", b"x" * 4000)
    data = bytearray(buffer.getvalue())
    data[30 + len("weights.safetensors") + 2] ^= 0xFF  # past the local header: the data
    return bytes(data)


def weights_file(dtype=np.float32, poison: float | None = None) -> bytes:
    """LeNet's published weights, cast to `dtype` or with one value replaced."""
    from safetensors.numpy import load, save

    tensors = load((index.EMBEDDED / LENET.urls[0]).read_bytes())
    tensors = {k: v.astype(dtype) for k, v in tensors.items()}
    if poison is not None:
        tensors["fc2/bias"][3] = poison
    return save(tensors, metadata={"zoo.format": "1"})


def lenet_card(folder: Path, body: bytes, **fields) -> dict[str, str]:
    """A classification/lenet:evil card (the embedded one's config and info) serving `body`."""
    entry = {**LENET.to_json(), "tag": "evil", "file": "lenet-evil.safetensors",
             "urls": ["t/lenet-evil.safetensors"], "size": len(body),
             "sha256": hashlib.sha256(body).hexdigest(), **fields}
    return publish(folder, [entry], {"lenet-evil.safetensors": body})


PULL = ["pull", "t/m:v1"]
PREDICT = ["predict", "classification", "{image}", "--pretrained", "lenet:evil"]


@dataclasses.dataclass(frozen=True)
class Case:
    """`setup(server, folder)` publishes what the case needs, on the loopback server or
    in a folder hub, and returns its environment."""

    name: str
    setup: Callable[[HubServer, Path], dict[str, str]]
    expect: str
    argv: tuple[str, ...] = tuple(PULL)
    patch: tuple[tuple[str, object], ...] = ()  # (attribute of zoo.hub.archive, value)
    # the card is at fault, not its file: the verified weights may stay cached (a model is
    # built from the card only after they are fetched)
    weights_stay: bool = False

    def __str__(self) -> str:
        return self.name


def _entry(**fields):
    """A case whose one card has `fields` replaced (None: removed)."""
    def setup(server, folder):
        entry = {k: v for k, v in {**card(), **fields}.items() if v is not None or k == "sha256"}
        return publish(server, [entry], {"m-v1.bin": SAFE})
    return setup


def _hub(address: str, **env: str):
    return lambda server, folder: {"ZOO_HUB": address.format(url=server.url), **env}


CASES = [
    # --- a web hub's cards name files on its own site only ---------------------------
    Case("file:// url", _entry(urls=["file:///etc/passwd"]), "may only name files on its own site"),
    Case("local path via file:// of the index's own folder",
         _entry(urls=["file:///tmp/m-v1.bin"]), "may only name files on its own site"),
    Case("another host", _entry(urls=["http://203.0.113.9/t/m-v1.bin"]), "its own site"),
    Case("another port", _entry(urls=["http://127.0.0.1:9/t/m-v1.bin"]), "its own site"),
    Case("another scheme", lambda s, f: _entry(urls=[s.url.replace("http:", "https:") + "/hub/t/m-v1.bin"])(s, f),
         "its own site"),
    Case("hf:// from an http hub", _entry(urls=["hf://org/repo/m-v1.bin"]), "its own site"),
    Case("ftp url", _entry(urls=["ftp://127.0.0.1/m-v1.bin"]), "only http(s)://, file:// and hf://"),
    Case("percent-encoded ..", _entry(urls=["t/%2e%2e/%2e%2e/m-v1.bin"]), "'..' path segment"),
    # --- hf:// names, by Hugging Face's rules ----------------------------------------
    Case("hf revision ..", _hub("hf://org/repo@../x"), "revision '..' is not a branch"),
    Case("hf repo with --", _hub("hf://org--x/repo"), "is not a Hugging Face repo id"),
    Case("hf empty repo", _hub("hf://org/"), "is not a Hugging Face repo id"),
    Case("hf no repo", _hub("hf://org"), "expected hf://ORG/REPO"),
    Case("hf empty path segment", lambda s, f: {
        **publish(s, [card(urls=["hf://org/repo/t//m-v1.bin"])], prefix="/org/repo/resolve/main"),
        "ZOO_HUB": "hf://org/repo", "HF_ENDPOINT": s.url}, "empty, '.' or '..' segment"),
    Case("HF_ENDPOINT not http", _hub("hf://org/repo", HF_ENDPOINT="ftp://mirror"),
         "HF_ENDPOINT='ftp://mirror': expected an http(s):// address"),
    Case("HF_HUB_OFFLINE, index never fetched", _hub("{url}/hub", HF_HUB_OFFLINE="1"),
         "HF_HUB_OFFLINE=1 and the hub index"),
    # --- archives: limits and damage -------------------------------------------------
    Case("decompression bomb", lambda s, f: folder_card(
        f, body=tar_gz([("weights.safetensors", bytes(3 << 20))]), file="m-v1.tar.gz"),
        "refused, it extracts to more than"),
    Case("too many members", lambda s, f: folder_card(
        f, body=tar_gz([(f"f{i}", b"") for i in range(6)]), file="m-v1.tar.gz"),
        "refused, 6 members, more than 5", patch=(("MAX_FILES", 5),)),
    Case("file and folder clash", lambda s, f: folder_card(
        f, body=tar_gz([("a", b"1"), ("a/b", b"2")]), file="m-v1.tar.gz"),
        "'a' is both a file and a folder"),
    Case("member twice", lambda s, f: folder_card(
        f, body=tar_gz([("a", b"1"), ("a", b"2")]), file="m-v1.tar.gz"), "'a' appears twice"),
    Case("truncated archive", lambda s, f: folder_card(
        f, body=tar_gz([("weights.safetensors", os.urandom(50_000))])[:30_000],
        file="m-v1.tar.gz"), "damaged archive"),
    Case("bad CRC", lambda s, f: folder_card(f, body=bad_crc_zip(), file="m-v1.zip"),
         "damaged archive (Bad CRC-32"),
    Case("over-long name", lambda s, f: folder_card(
        f, body=tar_gz([("x" * 300, b"1")]), file="m-v1.tar.gz"), "has an over-long name"),
    Case("not an archive", lambda s, f: folder_card(f, body=b"\x1f\x8b nonsense", file="m-v1.tar.gz"),
         "not a tar or zip archive"),
    Case("dotdot member", lambda s, f: folder_card(
        f, body=tar_gz([("../../escape.txt", b"1")]), file="m-v1.tar.gz"), "points outside"),
    Case("fifo member", lambda s, f: folder_card(
        f, body=tar_gz([("pipe", b"")], kind=tarfile.FIFOTYPE), file="m-v1.tar.gz"),
        "device or special file"),
    # --- malformed cards and indexes --------------------------------------------------
    Case("not JSON", lambda s, f: publish(s, b"{not json"), "not valid JSON"),
    Case("a 5000-digit number", lambda s, f: publish(s, b'{"entries": [{"size": ' + b"9" * 5000 + b'}]}'),
         "not valid JSON"),
    Case("nested 100,000 deep", lambda s, f: publish(s, b"[" * 100_000 + b"]" * 100_000), "not valid JSON"),
    Case("entries not a list", lambda s, f: publish(s, b'{"entries": {}}'), "expected {\"format\""),
    Case("entry not an object", lambda s, f: publish(s, [["t", "m"]]), "an entry is not a JSON object"),
    Case("index format from the future", lambda s, f: publish(s, b'{"format": 99, "entries": []}'),
         "has format 99"),
    Case("card format true", _entry(format=True), "has format True"),
    Case("task null", _entry(task=None), "lacks task"),
    Case("model 300 chars", _entry(model="m" * 300), "refused model"),
    Case("tag with a slash", _entry(tag="v1/../../x"), "refused tag"),
    Case("tag with a bidi control", _entry(tag="v1\u202e"), "refused tag"),
    Case("urls null", _entry(urls=None), "lacks urls"),
    Case("urls empty", _entry(urls=[]), "'urls' must be a list of 1 to 16"),
    Case("url a number", _entry(urls=[5]), "'urls' must be a list"),
    Case("size a string", _entry(size="big"), "size 'big' is not a count"),
    Case("size infinite", _entry(size=float("inf")), "size inf is not a count"),
    Case("size 10**30", _entry(size=10**30), "is not a count from 0 to"),
    Case("size negative", _entry(size=-1), "size -1 is not a count"),
    Case("sha256 a number", _entry(sha256=123), "sha256 123 is not 64 lowercase hex"),
    Case("params negative", _entry(params=-5), "params -5 is not a count"),
    Case("layout a list", _entry(layout=["zoo"]), "layout ['zoo'] is not one of"),
    Case("metrics a string", _entry(metrics="great"), "'metrics' must be a JSON object"),
    Case("metric value a string", _entry(metrics={"values": {"accuracy": "high"}}),
         "'values' must map metric names to finite numbers"),
    Case("classes a number", _entry(info={"classes": 5}), "info's 'classes' must be a list"),
    Case("unknown class list", _entry(info={"classes": "imagenet-99k"}), "upgrade zoo?"),
    Case("license a number", _entry(license=5), "'license' must be a string"),
    Case("versions not strings", _entry(versions={"jax": 1}), "'versions' must map names to strings"),
    Case("name listed twice", lambda s, f: publish(s, [card(), card()]), "lists t/m:v1 more than once"),
    # --- weights: refused, never cast or loaded with NaN ------------------------------
    Case("NaN weights", lambda s, f: lenet_card(f, weights_file(poison=float("nan"))),
         "weight 'fc2/bias' holds NaN or Inf", argv=tuple(PREDICT)),
    Case("Inf weights", lambda s, f: lenet_card(f, weights_file(poison=float("inf"))),
         "holds NaN or Inf", argv=tuple(PREDICT)),
    Case("float16 weights", lambda s, f: lenet_card(f, weights_file(np.float16)),
         "is float16, but zoo's models hold float32", argv=tuple(PREDICT)),
    Case("config of the wrong type", lambda s, f: lenet_card(f, weights_file(), config={
        **LENET.config, "image_size": "big"}), "config image_size='big': expected a 64-bit integer",
         argv=tuple(PREDICT)),
    Case("info input_shape a string", lambda s, f: lenet_card(f, weights_file(), info={
        **LENET.info, "input_shape": "x"}), "the card's info and config do not build a "
        "classification model", argv=tuple(PREDICT), weights_stay=True),
    Case("info missing", lambda s, f: lenet_card(f, weights_file(), info={}),
         "do not build a classification model (KeyError", argv=tuple(PREDICT), weights_stay=True),
    Case("config out of range", lambda s, f: lenet_card(f, weights_file(), config={
        **LENET.config, "train": {**LENET.config["train"], "batch_size": 0}}),
         "config train.batch_size=0 is out of range", argv=tuple(PREDICT)),
]


def tree_digest(root: Path, skip: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*")) if skip not in p.parents and p != skip}


@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_hub_is_refused_in_one_line(case, server, tmp_path, monkeypatch, capsys):
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    for name, value in case.setup(server, tmp_path / "hub").items():
        monkeypatch.setenv(name, value)
    for name, value in case.patch:
        monkeypatch.setattr(archive, name, value)
    home = tmp_path / "home"
    before = tree_digest(tmp_path, home)
    try:
        code = main([a.format(image=image) for a in case.argv])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("zoo: error: "), err
    assert "Traceback" not in err and case.expect in lines[0], err
    assert tree_digest(tmp_path, home) == before, "files outside the cache changed"
    kept = [p for p in (home / "hub" / "weights").rglob("*") if p.is_file()]
    if case.weights_stay:
        kept = [p for p in kept if p.read_bytes() != weights_file() and p.name != cache.RECORD]
    assert kept == [], f"cached after a refusal: {kept}"
    assert not (tmp_path.parent / "escape.txt").exists()


FUZZ_VALUES = [None, True, -1, 2**70, 1e308, float("nan"), "", "x" * 5000, "../../x", "v1\u202e",
               [], ["a", 1], {}, {"values": {"a": None}}]


def test_every_card_field_fuzzed_is_accepted_or_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """Each field of a valid card (and those it lacks) set to each hostile value: `zoo hub
    list` (then `zoo pull`, if the index was accepted) exit 0, or 2 with one line; never
    a traceback."""
    fields = [*card(), "layout", "metrics", "config", "info", "params", "versions", "plugin",
              "license", "source", "created", "format"]
    failures = []
    for number, (field, value) in enumerate((f, v) for f in fields for v in FUZZ_VALUES):
        hub = tmp_path / f"hub{number}"
        monkeypatch.setenv("ZOO_HUB", publish(hub, [{**card(), field: value}], {"m-v1.bin": SAFE})
                           ["ZOO_HUB"])
        monkeypatch.setenv("ZOO_HOME", str(tmp_path / f"home{number}"))
        for argv in (["hub", "list"], ["pull", "t/m:v1"]):
            code = main(argv)
            err = capsys.readouterr().err
            if code not in (0, 2) or (code == 2 and len(err.strip().splitlines()) != 1) or (
                    "Traceback" in err):
                failures.append((field, value, argv[0], code, err))
            if code == 2:
                break  # the index was refused: pull would read it the same way
    assert not failures, failures[:3]
