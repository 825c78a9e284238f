"""`zoo serve`'s process: load and compile every model, bind, serve with Uvicorn, and on
SIGTERM or SIGINT stop accepting, finish the requests in flight, exit 0."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn

from zoo.errors import ZooError
from zoo.serve.app import Limits, build_app
from zoo.serve.metrics import Metrics
from zoo.serve.models import load_models


def say(message: str) -> None:
    """A phase message on stderr, flushed at once (logs and tests read it live)."""
    print(f"zoo serve: {message}", file=sys.stderr, flush=True)


def serve(specs: Sequence[str], *, host: str, port: int, max_batch: int, window_s: float,
          limits: Limits, drain_s: float, access_log: bool,
          compile_also: Sequence[str] = ()) -> None:
    """Serves the models `specs` name until a signal; returns after draining."""
    sock = bind(host, port)  # first: a taken port fails before minutes of compiling
    metrics = Metrics()
    models = load_models(specs, max_batch=max_batch, window_s=window_s, metrics=metrics,
                         compile_also=compile_also, say=say)
    app = build_app(models, metrics, limits)
    config = uvicorn.Config(app, log_level="info" if access_log else "warning",
                            access_log=access_log, timeout_graceful_shutdown=drain_s,
                            lifespan="on")
    server = uvicorn.Server(config)
    bound_host, bound_port = sock.getsockname()[:2]
    batching = f"batches up to {max_batch}, {window_s * 1000:g} ms window" if max_batch > 1 \
        else "batching off"
    say(f"listening on http://{_url_host(bound_host)}:{bound_port} ({', '.join(models)}; "
        f"{batching})")
    received: list[int] = []
    with _signals_recorded(received):
        server.run(sockets=[sock])
    reason = signal.Signals(received[0]).name if received else "server stopped"
    say(f"{reason}: finished the requests in flight; stopped")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; connections made before the models are ready wait in its backlog.

    Raises:
      ZooError: the address is taken or cannot be had.
    """
    try:
        return socket.create_server((host, port), family=_family(host), backlog=2048)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise ZooError(f"cannot listen on {host}:{port} ({reason}); choose another "
                       f"--port (0: any free one) or --host") from None


class _signals_recorded:
    """SIGTERM/SIGINT handlers that only record the signal: Uvicorn installs its own
    while serving and re-raises the signal after its graceful shutdown, which would
    otherwise kill the process with the signal instead of exiting 0."""

    def __init__(self, received: list[int]):
        self.received = received

    def __enter__(self):
        self.previous = {s: signal.signal(s, lambda sig, frame: self.received.append(sig))
                         for s in (signal.SIGTERM, signal.SIGINT)}

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
