"""The HTTP API (Starlette): predict, models, health and metrics, JSON errors.

    POST /v1/models/NAME:predict   inputs in (zoo.serve.inputs), typed results out as
                                   JSON ({"model", "results": [Result.to_json()]}) or, with
                                   ?format=png, the result's picture
    GET  /v1/models[/NAME]         names, tasks, options, cards
    GET  /health                   {"status": "ok", "models": [...]}
    GET  /metrics                  Prometheus text (zoo.serve.metrics)

A request's model work runs in its model's batcher, off the event loop. Its host work
(decoding, `Task.prepare`, `Task.to_result`, JSON) runs on the event loop when the body
is one small image answered in JSON (the common case: a hand-off to a thread and back
costs more CPU than decoding a 28x28 PNG, and once 64 clients keep 40 threads waking
for the GIL, several times more), and on Starlette's thread pool otherwise, so a large
image, a multipart form or a GAN's grid never stalls the other requests. Every refusal
is a 4xx JSON `{"error": message}`; an unexpected failure a 500 JSON without a
traceback (logged), and the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from zoo.data.images import as_image
from zoo.errors import ZooError
from zoo.serve import inputs
from zoo.serve.inputs import RequestError
from zoo.serve.metrics import Metrics
from zoo.serve.models import ServedModel

log = logging.getLogger("zoo.serve")
RESPONSE_PARAMS = ("format", "file")  # query parameters that shape the answer, not options
INLINE_BYTES = 64 * 2**10  # an image body up to this size and...
INLINE_PIXELS = 256 * 256  # ...pixels is decoded and answered on the event loop (~1 ms)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_body: int = 10 * 2**20  # bytes
    max_inputs: int = 256  # inputs (images, sentences, generated images) per request
    read_timeout_s: float = 30.0  # a client that sends its body slower is answered 408


def build_app(models: Mapping[str, ServedModel], metrics: Metrics,
              limits: Limits = Limits()) -> Starlette:
    """The ASGI app serving `models` (already loaded and compiled)."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        for model in models.values():
            model.batcher.start()
        yield
        await asyncio.gather(*(m.batcher.close() for m in models.values()))

    app = Starlette(routes=[
        Route("/v1/models/{name}:predict", predict, methods=["POST"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{name}", describe, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ], lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.models, app.state.metrics, app.state.limits = models, metrics, limits
    return app


async def predict(request: Request) -> Response:
    """`POST /v1/models/NAME:predict`: every outcome answered and counted."""
    models, metrics = request.app.state.models, request.app.state.metrics
    name = request.path_params["name"]
    model = models.get(name)
    if model is None:
        metrics.requests.labels("", "404").inc()
        metrics.errors.labels("", "unknown_model").inc()
        return _error(404, f"no model named {name!r}; this server has "
                           f"{', '.join(sorted(models))} (GET /v1/models)")
    t0 = time.perf_counter()
    try:
        with metrics.in_flight.labels(model.name).track_inprogress():
            response = await _predict(model, request, request.app.state.limits)
    except RequestError as e:
        response = _refusal(model.name, e.status, str(e), e.reason, metrics)
    except ZooError as e:  # the task's own checks (an option's range, an image's shape)
        response = _refusal(model.name, 400, str(e), "bad_input", metrics)
    except Exception as e:  # a bug, not the client's fault: logged, answered, survived
        log.exception("%s: predict failed", model.name)
        response = _refusal(model.name, 500, f"internal error: {type(e).__name__}: {e}",
                            "internal", metrics)
    metrics.requests.labels(model.name, str(response.status_code)).inc()
    metrics.latency.labels(model.name).observe(time.perf_counter() - t0)
    return response


async def list_models(request: Request) -> Response:
    return JSONResponse({"models": [m.describe() for m in request.app.state.models.values()]})


async def describe(request: Request) -> Response:
    models, name = request.app.state.models, request.path_params["name"]
    if name.endswith(":predict"):  # this route matched a GET of the predict path
        return _error(405, "predict takes POST (GET /v1/models/NAME describes a model)")
    if name not in models:
        return _error(404, f"no model named {name!r}; this server has {', '.join(sorted(models))}")
    return JSONResponse(models[name].describe())


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok", "models": sorted(request.app.state.models)})


async def metrics_text(request: Request) -> Response:
    return Response(request.app.state.metrics.text(), media_type=CONTENT_TYPE_LATEST)


async def http_error(request: Request, exc: HTTPException) -> Response:
    return _error(exc.status_code, exc.detail)


async def _predict(model: ServedModel, request: Request, limits: Limits) -> Response:
    """Inputs in, the batch, results out: the host work inline for one small image
    answered in JSON, else in two hops to the thread pool around the batch."""
    answer_format, file = request.query_params.get("format", "json"), request.query_params.get("file")
    if answer_format not in ("json", "png"):
        raise RequestError(400, f"format={answer_format}: choose json or png")
    with model.batcher.expecting():
        body = await read_body(request, limits)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        form = await _form(request, body) if content_type == "multipart/form-data" else None
        query = {k: v for k, v in request.query_params.items() if k not in RESPONSE_PARAMS}
        inline = answer_format == "json" and inputs.is_small_image(
            content_type, body, INLINE_BYTES, INLINE_PIXELS)
        items, options, prepared = await _host(inline, _prepare, model, content_type, body,
                                               form, query, limits)
    rows = await model.batcher.submit(prepared, model.compiled_key(options))
    return await _host(inline, _answer, model, items, options, prepared, rows,
                       answer_format, file)


async def _host(inline: bool, work: Callable[..., Any], *args: Any) -> Any:
    """`work(*args)` here on the event loop, or (not `inline`) on the thread pool."""
    return work(*args) if inline else await run_in_threadpool(work, *args)


def _prepare(model: ServedModel, content_type: str, body: bytes, form: tuple | None,
             query: dict[str, str], limits: Limits) -> tuple[list[Any], Any, list[Any]]:
    """The request's inputs, its checked options, and the inputs prepared for the model."""
    predictor, task = model.predictor, model.predictor.task
    items, options = (inputs.from_form(*form, task) if form is not None
                      else inputs.from_body(content_type, body, task))
    both = sorted(set(query) & set(options))
    if both:
        raise RequestError(400, f"option {both[0]} is given both in the query and the body")
    values = options | query
    options = (predictor.options(**inputs.typed_options(task, values)) if values
               else model.defaults)
    model.compiled_key(options)  # a value not compiled is refused before any work
    if len(items) > limits.max_inputs:
        raise RequestError(413, f"{len(items)} inputs in one request; the limit is "
                                f"{limits.max_inputs}", "too_large")
    prepared = task.prepare(predictor.info, items, options)
    if not prepared:
        raise RequestError(400, f"no input: send {inputs.WHAT[inputs.kind(task)]} "
                                f"(see GET /v1/models/{model.name})")
    if len(prepared) > limits.max_inputs:
        raise RequestError(413, f"{len(prepared)} outputs asked for in one request; the limit "
                                f"is {limits.max_inputs}", "too_large")
    return items, options, prepared


def _answer(model: ServedModel, items: list[Any], options: Any, prepared: list[Any],
            rows: list[Any], answer_format: str, file: str | None) -> Response:
    """The typed results as JSON, or the picture they draw."""
    predictor = model.predictor
    results = [predictor.task.to_result(predictor.info, row, p, options)
               for row, p in zip(rows, prepared)]
    if answer_format == "png":
        return Response(_png(results, items, predictor.task, file), media_type="image/png")
    return JSONResponse({"model": model.name, "results": [r.to_json() for r in results]})


async def read_body(request: Request, limits: Limits) -> bytes:
    """The whole body, refused (413) past `max_body` bytes and (408) past the timeout."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body:
        raise RequestError(413, f"the body is {int(declared):,} bytes; the limit is "
                                f"{limits.max_body:,} (zoo serve --max-body)", "too_large")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(limits.read_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_body:
                    raise RequestError(413, f"the body is over the limit of "
                                            f"{limits.max_body:,} bytes (zoo serve --max-body)",
                                       "too_large")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(408, f"the body took over {limits.read_timeout_s:g} s to arrive",
                           "timeout") from None
    return b"".join(chunks)


async def _form(request: Request, body: bytes) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """A multipart body's files and fields (python-multipart, through Starlette)."""
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form()
    except Exception as e:  # python-multipart's parse errors: a malformed form
        raise RequestError(400, f"the multipart form cannot be read ({e})") from None
    files = [(item.filename or key, await item.read())
             for key, item in form.multi_items() if isinstance(item, UploadFile)]
    fields = [(key, item) for key, item in form.multi_items() if isinstance(item, str)]
    await form.close()
    return files, fields


def _png(results: list, items: list, task, file: str | None) -> bytes:
    """The picture a result type draws (a mask, boxes, a generated grid) as PNG bytes."""
    result_type = type(results[0])
    if not result_type.files:
        raise RequestError(400, f"{task.name} results have no picture; ask for JSON")
    file = file or next(iter(result_type.files))
    if file not in result_type.files:
        raise RequestError(400, f"file must be one of {', '.join(result_type.files)}")
    images = ([as_image(x) for x in items] if inputs.kind(task) == "image"
              else [None] * len(results))
    with tempfile.TemporaryDirectory() as tmp:
        paths = result_type.write(file, results, [f"input{i}" for i in range(len(results))],
                                  images, Path(tmp) / "answer.png")
        if len(set(paths)) != 1:
            raise RequestError(400, "a PNG answers one input; send one per request or ask "
                                    "for JSON")
        return paths[0].read_bytes()


def _refusal(name: str, status: int, message: str, reason: str, metrics: Metrics) -> Response:
    metrics.errors.labels(name, reason).inc()
    return _error(status, message)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)
