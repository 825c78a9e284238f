"""A loopback static file server whose routes can misbehave, for the hub tests.

Each route serves bytes like any static host (with HTTP Range), or fails the way real
hosts do: a status code, a truncated body, a lying Content-Length, a hang, a redirect.
Every request is logged, so tests can count downloads.
"""

from __future__ import annotations

import dataclasses
import http.server
import ssl
import threading
import time
from pathlib import Path


@dataclasses.dataclass
class Route:
    """How one path answers. Defaults: a well-behaved static file."""

    body: bytes = b""
    status: int = 200
    ranges: bool = True  # honour Range requests
    cut_after: int | None = None  # close the connection after this many body bytes
    content_length: int | None = None  # announce this instead of the real length
    hang: bool = False  # accept, then never answer (until the server stops)
    stall_after: int | None = None  # send this many body bytes, then nothing more
    location: str | None = None  # redirect (302) here
    fail_first: int = 0  # answer 503 (Retry-After: 0) this many times first
    hold: threading.Event | None = None  # wait for this before sending the body
    delay_s: float = 0.0  # then wait this long


class HubServer:
    """A threaded HTTP(S) server on 127.0.0.1; `routes` maps a path to a `Route`."""

    def __init__(self, tls: tuple[str, str] | None = None):
        self.routes: dict[str, Route] = {}
        self.log: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def add_folder(self, folder: Path, prefix: str) -> None:
        """Serves every file under `folder` at `prefix/RELATIVE_PATH`, as a static host would."""
        for path in folder.rglob("*"):
            if path.is_file():
                route = f"{prefix}/{path.relative_to(folder).as_posix()}"
                self.routes[route] = Route(path.read_bytes())

    def requests_for(self, path: str) -> list[dict[str, str]]:
        """The headers of every request made for `path`."""
        return [headers for p, headers in self.log if p == path]

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up on a misbehaving route are expected here


def _handler(server: HubServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            server.log.append((self.path, dict(self.headers)))
            route = server.routes.get(self.path)
            if route is None:
                return self._send_status(404)
            if route.hang:
                server.stopping.wait(120)
                return None
            if route.fail_first > 0:
                route.fail_first -= 1
                return self._send_status(503, {"Retry-After": "0"})
            if route.location is not None:
                return self._send_status(302, {"Location": route.location})
            if route.status != 200:
                return self._send_status(route.status)
            body, status, headers = route.body, 200, {}
            start = _range_start(self.headers.get("Range")) if route.ranges else None
            if start is not None:
                if start >= len(body):
                    return self._send_status(416)
                status, body = 206, body[start:]
                headers["Content-Range"] = f"bytes {start}-{len(route.body) - 1}/{len(route.body)}"
            if route.hold is not None:
                route.hold.wait(60)
            time.sleep(route.delay_s)
            length = route.content_length if route.content_length is not None else len(body)
            self.send_response(status)
            self.send_header("Content-Length", str(length))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if route.stall_after is not None:
                self.wfile.write(body[: route.stall_after])
                self.wfile.flush()
                server.stopping.wait(120)
                return
            sent = body if route.cut_after is None else body[: route.cut_after]
            self.wfile.write(sent)  # all of it, whatever Content-Length claimed
            self.wfile.flush()
            self.close_connection = True  # (announced: see `end_headers`)

        def end_headers(self) -> None:
            self.send_header("Connection", "close")  # every answer closes, as a client must know
            super().end_headers()

        def _send_status(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.close_connection = True

    return Handler


def _range_start(header: str | None) -> int | None:
    if not header or not header.startswith("bytes="):
        return None
    start = header.removeprefix("bytes=").split("-")[0]
    return int(start) if start.isdigit() else None
