"""zoo serve: a real HTTP server on 127.0.0.1 and a real client (httpx).

Results equal `zoo.load(...).predict` on the same inputs for every body format; concurrent
requests share batches (read back from /metrics with Prometheus' own parser); hostile
requests get a 4xx JSON naming the problem and the server keeps serving; SIGTERM drains
the requests in flight and exits 0. One LeNet server (module-scoped) serves most tests.
"""

import asyncio
import base64
import contextlib
import functools
import io
import os
import re
import signal
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from helpers import wait_until, zoo_process
from zoo.serve import inputs
from zoo.serve.app import INLINE_BYTES, INLINE_PIXELS, Limits, build_app
from zoo.serve.batcher import Batcher
from zoo.serve.metrics import Metrics
from zoo.serve.models import buckets_for, load_models, parse_spec

LENET = "classification/lenet:mnist-sample"
# httpx waits 5 s by default; a machine shared by many engineers can take longer
post, get, delete = (functools.partial(f, timeout=120) for f in (httpx.post, httpx.get, httpx.delete))
NAME = "lenet-mnist-sample"


@contextlib.contextmanager
def serving(specs, *, max_batch=8, window_s=0.02, limits=Limits(), compile_also=()):
    """The models `specs` name, served by Uvicorn in a thread on a free loopback port;
    yields (base URL, the loaded models)."""
    metrics = Metrics()
    models = load_models(specs, max_batch=max_batch, window_s=window_s, metrics=metrics,
                         compile_also=compile_also, say=lambda message: None)
    server = uvicorn.Server(uvicorn.Config(build_app(models, metrics, limits),
                                           log_level="warning", lifespan="on"))
    sock = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert wait_until(lambda: server.started, timeout=120)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", models
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def lenet_server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_HOME", str(tmp_path_factory.getbasetemp() / "zoo-home"))
        # a body late by 3 s is a slow client (a loaded CI machine delays a burst's bodies by 0.5 s)
        with serving([LENET], limits=Limits(max_body=200_000, read_timeout_s=3.0)) as served:
            yield served


def digits(n, seed=0):
    """`n` random 28x28 grey images as PNG bytes, with their arrays."""
    rng = np.random.default_rng(seed)
    arrays = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(n)]
    return [_png(a) for a in arrays], arrays


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def predict_url(url, name=NAME):
    return f"{url}/v1/models/{name}:predict"


def assert_same(served, expected):
    """JSON results equal the Python API's (scores rounded to 6 places by to_json; a
    different batch padding may move the last place)."""
    assert len(served) == len(expected)
    for got, want in zip(served, [r.to_json() for r in expected]):
        assert [t["label"] for t in got["top"]] == [t["label"] for t in want["top"]]
        np.testing.assert_allclose([t["score"] for t in got["top"]],
                                   [t["score"] for t in want["top"]], atol=2e-6)


def test_every_body_format_matches_the_python_api(lenet_server):
    url, models = lenet_server
    predictor = models[NAME].predictor
    pngs, arrays = digits(3)
    expected = predictor.predict(arrays, top_k=3)

    raw = [post(predict_url(url), content=png, params={"top_k": 3},
                      headers={"content-type": "image/png"}) for png in pngs]
    assert all(r.status_code == 200 for r in raw), [r.text for r in raw]
    assert_same([r.json()["results"][0] for r in raw], expected)
    large = np.kron(arrays[0], np.ones((10, 10), np.uint8))  # 280x280: decoded off the event loop
    assert not inputs.is_small_image("image/png", _png(large), INLINE_BYTES, INLINE_PIXELS)
    assert inputs.is_small_image("image/png", pngs[0], INLINE_BYTES, INLINE_PIXELS)
    off_loop = post(predict_url(url), content=_png(large), headers={"content-type": "image/png"})
    assert_same(off_loop.json()["results"], [predictor.predict(large)])

    form = post(predict_url(url), data={"top_k": "3"},
                      files=[("image", (f"{i}.png", png, "image/png")) for i, png in enumerate(pngs)])
    assert form.status_code == 200, form.text
    assert_same(form.json()["results"], expected)

    body = {"inputs": [base64.b64encode(pngs[0]).decode(), {"b64": base64.b64encode(pngs[1]).decode()},
                       base64.b64encode(pngs[2]).decode()], "options": {"top_k": 3}}
    as_json = post(predict_url(url), json=body)
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["model"] == NAME
    assert_same(as_json.json()["results"], expected)


def metric_samples(url):
    """{(name, labels...): value} from /metrics, parsed by prometheus_client's parser."""
    text = get(f"{url}/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_concurrent_requests_share_batches(lenet_server):
    url, models = lenet_server
    pngs, arrays = digits(24, seed=1)
    expected = models[NAME].predictor.predict(arrays, top_k=2)
    before = metric_samples(url)

    async def send_all():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(
                client.post(predict_url(url), content=png, params={"top_k": 2},
                            headers={"content-type": "image/png"}) for png in pngs))

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * len(pngs)
    assert_same([r.json()["results"][0] for r in responses], expected)  # each its own answer
    after = metric_samples(url)
    label = (("model", NAME),)
    batches = after["zoo_batch_size_count", label] - before["zoo_batch_size_count", label]
    inputs = after["zoo_batch_size_sum", label] - before["zoo_batch_size_sum", label]
    assert inputs == len(pngs)
    assert batches < len(pngs), "no two concurrent requests ran in one batch"
    single = (after["zoo_batch_size_bucket", (("le", "1.0"),) + label]
              - before["zoo_batch_size_bucket", (("le", "1.0"),) + label])
    assert single < batches  # at least one batch of more than one input
    assert after["zoo_queue_depth", label] == 0
    assert after["zoo_requests_total", (("code", "200"),) + label] >= len(pngs)
    assert after["zoo_request_latency_seconds_count", label] >= len(pngs)


HOSTILE = {
    "truncated image": (dict(content=_png(np.full((64, 64), 7, np.uint8))[:60],
                             headers={"content-type": "image/png"}), 400, "not a readable image"),
    "not an image": (dict(content=b"hello", headers={"content-type": "image/jpeg"}),
                     400, "not an image in a format"),
    "wrong content type": (dict(content=b"<html/>", headers={"content-type": "text/html"}),
                           415, "not text/html"),
    "too large a body": (dict(content=b"x" * 200_001, headers={"content-type": "image/png"}),
                         413, "the limit is 200,000"),
    "bad JSON": (dict(content=b"{", headers={"content-type": "application/json"}), 400, "not valid JSON"),
    "bad base64": (dict(json={"inputs": ["%%%"]}), 400, "inputs[0] is not valid base64"),
    "unknown option": (dict(json={"inputs": [], "options": {"topk": 2}}), 400, "did you mean 'top_k'"),
    "option of the wrong type": (dict(params={"top_k": "many"}, content=_png(np.zeros((28, 28), np.uint8)), headers={
        "content-type": "image/png"}), 400, "top_k='many' is not a valid int"),
    "option out of range": (dict(json={"inputs": [], "options": {"top_k": 0}}), 400, "out of range"),
    "no input": (dict(json={"inputs": []}), 400, "no input: send an image"),
    "empty form": (dict(content=b"--x--\r\n", headers={"content-type": "multipart/form-data; boundary=x"}),
                   400, "no input"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_requests_get_a_json_4xx_naming_the_problem(lenet_server, case):
    url, _ = lenet_server
    request, status, message = HOSTILE[case]
    response = post(predict_url(url), **request)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    good = post(predict_url(url), content=digits(1)[0][0], headers={"content-type": "image/png"})
    assert good.status_code == 200  # the server goes on serving others


def test_unknown_model_and_routes(lenet_server):
    url, _ = lenet_server
    response = post(predict_url(url, "resnet"), content=b"x")
    assert response.status_code == 404
    assert re.search(f"no model named 'resnet'; this server has {NAME}", response.json()["error"])
    assert get(f"{url}/nowhere").status_code == 404
    wrong_method = get(predict_url(url))
    assert wrong_method.status_code == 405 and "predict takes POST" in wrong_method.json()["error"]
    assert delete(f"{url}/health").json()["error"] == "Method Not Allowed"
    unknown = metric_samples(url)["zoo_request_errors_total", (("model", ""), ("reason", "unknown_model"))]
    assert unknown >= 1  # counted, without a label the client chose


def read_response(sock):
    """(status, body text) of one HTTP/1.1 response read from a raw socket."""
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or pytest.fail(f"connection closed after {data!r}")
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536) or pytest.fail(f"connection closed after {data + body!r}")
    return int(head.split()[1]), body.decode()


def test_a_slow_client_gets_408_and_others_are_served(lenet_server):
    url, _ = lenet_server
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     f"image/png\r\nContent-Length: 1000\r\n\r\n".encode() + b"\x89PNG")
        good = post(predict_url(url), content=digits(1)[0][0], headers={"content-type": "image/png"})
        assert good.status_code == 200
        status, body = read_response(slow)
    assert status == 408 and "took over 3 s to arrive" in body


def test_models_health_and_cards(lenet_server):
    url, _ = lenet_server
    assert get(f"{url}/health").json() == {"status": "ok", "models": [NAME]}
    (model,) = get(f"{url}/v1/models").json()["models"]
    assert model["task"] == "classification" and model["options"] == {"top_k": 1}
    assert model["buckets"] == [1, 2, 4, 8] and model["card"]["tag"] == "mnist-sample"
    assert get(f"{url}/v1/models/{NAME}").json() == model


def test_the_benchmark_load_generator_speaks_http(lenet_server):
    from benchmarks.serve import load_level

    url, _ = lenet_server
    row = asyncio.run(load_level(url, NAME, digits(1)[0][0], clients=3, requests=9,
                                 seconds=60, server_pid=os.getpid()))
    assert row["requests"] == 9 and row["errors"] == 0
    assert 0 < row["p50_ms"] <= row["p99_ms"] and row["rps"] > 0


def test_model_names_and_buckets():
    assert parse_spec(LENET) == (NAME, LENET)
    assert parse_spec("runs/detection/") == ("detection", "runs/detection/")
    assert parse_spec("digits=runs/x") == ("digits", "runs/x")
    assert buckets_for(1) == (1,) and buckets_for(32) == (1, 2, 4, 8, 16, 32)
    assert buckets_for(24) == (1, 2, 4, 8, 16, 24)


def test_batcher_keeps_options_apart_and_survives_a_failing_batch():
    calls = []

    def run(items, key):
        calls.append((key, list(items)))
        if "boom" in items:
            raise RuntimeError("device lost")
        return [f"{key}:{item}" for item in items]

    async def scenario():
        batcher = Batcher(run, max_batch=4, window_s=0.05)
        batcher.start()
        results = await asyncio.gather(
            batcher.submit(["a", "b"], "beam1"), batcher.submit(["c"], "beam4"),
            batcher.submit(["d", "e", "f"], "beam1"), batcher.submit(["g"], "beam1"),
            return_exceptions=True)
        failed = await asyncio.gather(batcher.submit(["boom"], "x"), return_exceptions=True)
        after = await batcher.submit(["h"], "x")
        await batcher.close()
        return results, failed, after

    results, failed, after = asyncio.run(scenario())
    assert results == [["beam1:a", "beam1:b"], ["beam4:c"], ["beam1:d", "beam1:e", "beam1:f"],
                       ["beam1:g"]]
    assert all(len(items) <= 4 and len({key}) == 1 for key, items in calls)
    assert ("beam1", ["a", "b"]) in calls and ("beam4", ["c"]) in calls
    assert isinstance(failed[0], RuntimeError) and after == ["x:h"]


def test_a_batch_is_cut_to_a_bucket_only_when_another_batch_will_run():
    sizes = []

    def run(items, key):
        sizes.append(len(items))
        return list(items)

    async def six_requests(another_on_its_way):
        batcher = Batcher(run, max_batch=8, window_s=0.05, buckets=(1, 2, 4, 8))
        batcher.start()
        with batcher.expecting() if another_on_its_way else contextlib.nullcontext():
            answers = await asyncio.gather(*(batcher.submit([i], "k") for i in range(6)))
        await batcher.close()
        return answers

    assert asyncio.run(six_requests(False)) == [[i] for i in range(6)]
    assert sizes == [6]  # alone: padded to 8 in one call rather than two calls
    sizes.clear()
    assert asyncio.run(six_requests(True)) == [[i] for i in range(6)]
    assert sizes == [4, 2]  # more to come: 4 now, 2 with the next batch, no padding


def test_sigterm_finishes_requests_in_flight_and_exits_0():
    server = zoo_process("serve", "--model", LENET, "--port", "0", "--max-batch", "2")
    try:
        lines = []
        while not lines or "listening on" not in lines[-1]:
            lines.append(server.stderr.readline())
            assert lines[-1], "".join(lines)
        assert "loading" in lines[0] and "compiling 2 batch buckets" in lines[1]
        url = re.search(r"http://\S+", lines[-1]).group(0)
        png = digits(1)[0][0]
        with socket.create_connection(url.removeprefix("http://").rsplit(":", 1)) as client:
            client.sendall(f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           f"image/png\r\nContent-Length: {len(png)}\r\n\r\n".encode() + png[:10])
            assert wait_until(lambda: f'zoo_requests_in_flight{{model="{NAME}"}} 1.0' in
                              get(f"{url}/metrics").text, timeout=30)
            server.send_signal(signal.SIGTERM)
            time.sleep(0.2)  # the server stops accepting; the request in flight goes on
            client.sendall(png[10:])
            status, body = read_response(client)
        assert status == 200 and '"label"' in body, body
        assert server.wait(timeout=120) == 0
        assert "SIGTERM: finished the requests in flight; stopped" in server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()


def test_a_missing_serve_extra_is_one_line_naming_it(monkeypatch, capsys):
    import importlib.util

    from zoo.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve", "--model", LENET]) == 2
    assert capsys.readouterr().err.strip() == (
        "zoo: error: zoo serve needs the serve extra (uvicorn missing): pip install 'zoo[serve]'")


def test_segmentation_translation_and_gan_endpoints_match_the_python_api(tmp_path):
    from zoo.data.draw import label_image

    specs = ["segmentation/unet:scenes", "translation/lstm-attention:numbers",
             "gan/cdcgan:mnist-sample"]
    with serving(specs, max_batch=2) as (url, models):
        scene = np.random.default_rng(3).integers(0, 256, (48, 40), dtype=np.uint8)
        mask = models["unet-scenes"].predictor.predict(scene).mask
        segmented = post(predict_url(url, "unet-scenes"), content=_png(scene),
                               headers={"content-type": "image/png"})
        assert segmented.status_code == 200, segmented.text
        assert np.array_equal(segmented.json()["results"][0]["mask"], mask)
        picture = post(predict_url(url, "unet-scenes"), content=_png(scene),
                             params={"format": "png", "file": "mask_out"},
                             headers={"content-type": "image/png"})
        assert picture.headers["content-type"] == "image/png"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(picture.content))),
                              np.asarray(label_image(mask)))

        sentences = ["twenty-one", "three hundred and five"]
        translated = post(predict_url(url, "lstm-attention-numbers"),
                                content="\n".join(sentences).encode(),
                                headers={"content-type": "text/plain"})
        expected = models["lstm-attention-numbers"].predictor.predict(sentences)
        assert translated.json()["results"] == [r.to_json() for r in expected]
        greedy = post(predict_url(url, "lstm-attention-numbers"), json={"inputs": ["one"]},
                      params={"beam": 1})  # not compiled at start-up: refused, not compiled now
        assert greedy.status_code == 400
        assert greedy.json()["error"] == ("beam=1 is not compiled on this server (it compiled "
                                          "beam=5); start it with --compile beam=1")

        generated = post(predict_url(url, "cdcgan-mnist-sample"),
                               params={"count": 2, "label": 7, "seed": 4})
        expected = models["cdcgan-mnist-sample"].predictor.predict(count=2, label=7, seed=4)
        assert generated.status_code == 200, generated.text
        assert generated.json()["results"] == [r.to_json() for r in expected]
        assert [r["label"] for r in generated.json()["results"]] == ["7", "7"]
        grid = post(predict_url(url, "cdcgan-mnist-sample"), json={"inputs": [1, 2, 3]},
                          params={"format": "png"})
        assert Image.open(io.BytesIO(grid.content)).size == (3 * 28 + 4 * 2, 28 + 2 * 2)
        no_picture = post(predict_url(url, "lstm-attention-numbers"), json={"inputs": ["one"]},
                                params={"format": "png"})
        assert no_picture.status_code == 400 and "no picture" in no_picture.json()["error"]


def test_a_port_in_use_is_one_line_before_any_model_loads(capsys):
    from zoo.cli.main import main

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["serve", "--model", "no/such:model", "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"zoo: error: cannot listen on 127.0.0.1:{port} (Address already in use)")


@pytest.mark.slow
def test_compile_also_serves_another_beam_width():
    with serving(["ocr/crnn:mixed"], max_batch=2, compile_also=["beam=3"]) as (url, models):
        model = models["crnn-mixed"]
        assert [c["beam"] for c in get(f"{url}/v1/models/crnn-mixed").json()["compiled"]] == [1, 3]
        line = np.random.default_rng(2).integers(0, 256, (32, 96), dtype=np.uint8)
        served = post(predict_url(url, "crnn-mixed"), content=_png(line), params={"beam": 3},
                      headers={"content-type": "image/png"})
        assert served.json()["results"] == [model.predictor.predict(line, beam=3).to_json()]


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["detection/centernet:scenes", "instances/condinst:scenes",
                                  "ocr/crnn:mixed"])
def test_every_image_task_endpoint_matches_the_python_api(spec):
    with serving([spec], max_batch=2) as (url, models):
        (name, model), = models.items()
        predictor = model.predictor
        shape = np.shape(predictor.task.example_input(predictor.info)[0])
        image = np.random.default_rng(5).integers(0, 256, shape[:2], dtype=np.uint8)
        served = post(predict_url(url, name), content=_png(image),
                            headers={"content-type": "image/png"})
        assert served.status_code == 200, served.text
        assert served.json()["results"] == [predictor.predict(image).to_json()]
