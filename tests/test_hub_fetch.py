"""Hub downloads against a loopback server that misbehaves the ways real hosts do.

Never the internet: every test serves its hub from `hub_server.HubServer` on 127.0.0.1.
"""

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from zoo.errors import ZooError
from zoo.hub import cache, fetch, index, urls

from hub_server import HubServer, Route

PAYLOAD = np.random.default_rng(0).bytes(300_000)
FILE = "/hub/t/m-v1.bin"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A cache of the test's own, and online unless a test says not."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "20")  # generous: the machine may be loaded
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    return tmp_path / "home"


@pytest.fixture
def server():
    s = HubServer()
    yield s
    s.stop()


def card_json(body=PAYLOAD, **fields):
    return {"task": "t", "model": "m", "tag": "v1", "file": "m-v1.bin", "urls": ["t/m-v1.bin"],
            "size": len(body), "sha256": hashlib.sha256(body).hexdigest(), **fields}


@pytest.fixture
def serve(server, monkeypatch):
    """Serves a hub at SERVER/hub with one card for PAYLOAD; returns the file's Route."""

    def publish(route=None, hub_server=None, **fields):
        hub_server = hub_server or server
        hub_server.routes["/hub/index.json"] = Route(json.dumps(
            {"format": 1, "entries": [card_json(**fields)]}).encode())
        hub_server.routes[FILE] = route or Route(PAYLOAD)
        monkeypatch.setenv("ZOO_HUB", hub_server.url + "/hub")
        return hub_server.routes[FILE]

    return publish


def pull(**kwargs):
    hub = index.load()
    return cache.fetch_card(hub.find("t"), hub.url_of(hub.find("t")), **kwargs)


def cached_files(home):
    return sorted(p for p in (home / "hub" / "weights").rglob("*")
                  if p.is_file() and p.name != cache.RECORD)


def test_good_download_is_verified_cached_and_reused(server, serve, home):
    serve()
    path = pull()
    assert path.read_bytes() == PAYLOAD and cached_files(home) == [path]
    assert pull() == path
    assert len(server.requests_for(FILE)) == 1


@pytest.mark.parametrize("ranges", [True, False], ids=["resumed", "restarted"])
def test_truncated_download_says_so_then_resumes(server, serve, home, ranges):
    route = serve(Route(PAYLOAD, cut_after=100_000, ranges=ranges))
    with pytest.raises(ZooError, match=r"truncated: the connection dropped after [\d,]+ of "
                                       r"300,000 bytes.*run the same command again to resume"):
        pull()
    (part,) = cached_files(home)
    kept = part.stat().st_size
    assert part.name == "m-v1.bin.part" and 0 < kept <= 100_000
    route.cut_after = None
    assert pull().read_bytes() == PAYLOAD
    assert server.requests_for(FILE)[-1].get("Range") == f"bytes={kept}-"
    assert [p.name for p in cached_files(home)] == ["m-v1.bin"]  # no .part left


def test_corrupted_download_is_refused_and_nothing_is_cached(serve, home):
    serve(Route(bytes(len(PAYLOAD))))  # right size, wrong bytes
    with pytest.raises(ZooError, match="sha256 mismatch.*not the published file"):
        pull()
    assert cached_files(home) == []


def test_404_on_the_first_mirror_then_the_second(server, serve):
    serve(urls=["t/missing.bin", server.url + "/mirror/m-v1.bin"])
    server.routes["/mirror/m-v1.bin"] = Route(PAYLOAD)
    assert pull().read_bytes() == PAYLOAD
    assert [p for p, _ in server.log if p != "/hub/index.json"] == ["/hub/t/missing.bin",
                                                                     "/mirror/m-v1.bin"]


@pytest.mark.parametrize("route, message", [
    (Route(PAYLOAD, hang=True), "no answer within 1 s"),
    (Route(PAYLOAD, stall_after=200_000), r"no data for 1 s .*after [\d,]+ of 300,000 bytes; "
                                          r"the partial file is kept"),
], ids=["no-answer", "stalled"])
def test_hanging_server_times_out_with_a_clear_error(serve, route, message, monkeypatch):
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "1")
    serve(route)
    t0 = time.perf_counter()
    with pytest.raises(ZooError, match=message):
        pull()
    assert time.perf_counter() - t0 < 10


@pytest.mark.parametrize("route, message", [
    (Route(PAYLOAD, content_length=1000), r"received 1,000 of 300,000 bytes \(the server "
                                          r"announced only 1,000\)"),
    (Route(PAYLOAD, content_length=10**9), "announces 1,000,000,000 bytes but the card says"),
], ids=["announces-less", "announces-more"])
def test_server_lying_about_content_length(serve, home, route, message):
    serve(route)
    with pytest.raises(ZooError, match=message):
        pull()
    assert not any(p.name == "m-v1.bin" for p in cached_files(home))


def test_503_is_retried(server, serve):
    serve(Route(PAYLOAD, fail_first=1))
    assert pull().read_bytes() == PAYLOAD
    assert len(server.requests_for(FILE)) == 2


def test_two_processes_pulling_at_once_download_once(server, serve):
    hold = threading.Event()
    serve(Route(PAYLOAD, hold=hold, delay_s=1.0))
    procs = [subprocess.Popen([sys.executable, "-m", "zoo.cli.main", "pull", "t/m:v1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    deadline = time.time() + 60
    while len(server.requests_for("/hub/index.json")) < 2 and time.time() < deadline:
        time.sleep(0.05)
    hold.set()  # both have read the index: now one downloads while the other waits
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert len(server.requests_for(FILE)) == 1
    assert sum("waiting for another process" in err for _, err in outputs) == 1, outputs
    assert outputs[0][0].split(": ")[1] == outputs[1][0].split(": ")[1]  # the same path


def test_offline_with_an_empty_cache_names_what_is_missing(server, serve, monkeypatch):
    serve()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(ZooError, match="ZOO_OFFLINE=1 and the hub index .* never been fetched"):
        index.load()
    monkeypatch.delenv("ZOO_OFFLINE")
    hub = index.load()  # the index is now cached, the file is not
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(ZooError, match=r"t/m:v1 \(m-v1.bin\) is not in the cache .*ZOO_OFFLINE"):
        cache.fetch_card(hub.find("t"), hub.url_of(hub.find("t")))
    assert server.requests_for(FILE) == []


@pytest.mark.parametrize("variable", ["ZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_with_a_filled_cache_makes_no_network_call(server, serve, monkeypatch, variable):
    serve()
    path = pull()
    before = len(server.log)
    monkeypatch.setenv(variable, "1")

    def no_network(*args):
        raise AssertionError("network call in offline mode")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(AssertionError):  # the patch does stop any connection
        socket.create_connection(("127.0.0.1", 9))
    assert pull() == path and path.read_bytes() == PAYLOAD
    assert len(server.log) == before


def test_corrupted_cached_file_is_detected_and_fetched_again(server, serve, capfd):
    serve()
    path = pull()
    with open(path, "r+b") as f:  # one flipped byte, same size
        f.seek(1234)
        f.write(bytes([PAYLOAD[1234] ^ 0xFF]))
    assert pull().read_bytes() == PAYLOAD
    assert "is corrupted (sha256 mismatch); fetching it again" in capfd.readouterr().err
    assert len(server.requests_for(FILE)) == 2


def test_unreachable_host_falls_back_to_the_cached_index(server, serve, capfd):
    serve()
    pull()
    server.routes.pop("/hub/index.json")
    assert pull().read_bytes() == PAYLOAD
    assert "using the copy cached" in capfd.readouterr().err


def test_unverified_entries_need_allow_unverified(serve):
    serve(sha256=None)
    with pytest.raises(ZooError, match="no sha256.*--allow-unverified"):
        pull()
    assert pull(allow_unverified=True).read_bytes() == PAYLOAD


def test_http_redirect_is_followed(server, serve):
    serve(Route(location="/elsewhere/m-v1.bin"))
    server.routes["/elsewhere/m-v1.bin"] = Route(PAYLOAD)
    assert pull().read_bytes() == PAYLOAD


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_https_to_http_redirect_is_refused(server, serve, tmp_path, monkeypatch):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    secure = HubServer(tls=(str(cert), str(key)))
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # the index is read over TLS
        serve(Route(location=server.url + "/plain/m-v1.bin"), hub_server=secure)
        server.routes["/plain/m-v1.bin"] = Route(PAYLOAD)
        with pytest.raises(ZooError, match="refused redirect from https to http"):
            pull()
        assert server.requests_for("/plain/m-v1.bin") == []
    finally:
        secure.stop()


@pytest.mark.parametrize("fields, message", [
    ({"model": "../../etc"}, "refused model"),
    ({"file": "../m-v1.bin"}, "refused file"),
    ({"urls": ["../../secret/m-v1.bin"]}, "refused address"),
    ({"urls": ["t/%2e%2e/%2e%2e/m-v1.bin"]}, "refused address"),
    ({"urls": ["ftp://example.org/m-v1.bin"]}, "only http"),
    ({"sha256": "abc"}, "not 64 lowercase hex"),
])
def test_hostile_cards_are_refused(serve, fields, message):
    serve(**fields)
    with pytest.raises(ZooError, match=message):
        pull()


def test_hostile_hub_address_and_redirect_are_refused(monkeypatch):
    monkeypatch.setenv("ZOO_HUB", "http://127.0.0.1:9/hub/../../admin")
    with pytest.raises(ZooError, match="refused address"):
        index.load()
    with pytest.raises(fetch.MirrorError, match="'..'"):
        fetch.next_url("http://a.example/hub/x.bin", "../../admin/x.bin")
    hf = "https://huggingface.co/org/repo/resolve"
    assert urls.resolve("hf://org/repo@v2/t/x.bin", "/hub/index.json") == f"{hf}/v2/t/x.bin"
    assert urls.index_url("hf://org/repo") == f"{hf}/main/index.json"


def test_hf_hub_on_a_mirror_sends_the_token_to_its_own_site_only(server, monkeypatch, capfd):
    """`ZOO_HUB=hf://org/repo@v2` read from `HF_ENDPOINT` (the loopback server): the index
    and the file carry `HF_TOKEN`; the CDN the file redirects to (another port) does not."""
    cdn = HubServer()
    try:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HOME", str(cache.root() / "no-hf-home"))
        monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
        monkeypatch.setenv("ZOO_HUB", "hf://org/repo@v2")
        base = "/org/repo/resolve/v2"
        server.routes[f"{base}/index.json"] = Route(json.dumps({"entries": [card_json()]}).encode())
        server.routes[f"{base}/t/m-v1.bin"] = Route(location=cdn.url + "/blob/m-v1.bin")
        cdn.routes["/blob/m-v1.bin"] = Route(PAYLOAD)
        assert pull().read_bytes() == PAYLOAD
        for path in (f"{base}/index.json", f"{base}/t/m-v1.bin"):
            assert server.requests_for(path)[0]["Authorization"] == "Bearer hf_secret_token"
        assert "Authorization" not in cdn.requests_for("/blob/m-v1.bin")[0]
        cdn.routes["/blob/m-v1.bin"] = Route(status=403)
        cache.discard(index.load().find("t"))
        with pytest.raises(ZooError, match="HTTP 403") as refused:
            pull()
        assert "hf_secret" not in str(refused.value) + capfd.readouterr().err
    finally:
        cdn.stop()
