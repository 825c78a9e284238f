"""`zoo serve` under load: requests/s and p50/p99 latency with batching on and off.

    python -m benchmarks.serve                       LeNet and the segmentation U-Net
    python -m benchmarks.serve --models classification/lenet:mnist-sample --clients 1,64

Each model is served by two `zoo serve` processes on 127.0.0.1 (free ports), one with
dynamic batching (`--max-batch 32 --batch-window-ms 5`) and one without (`--max-batch
1`), measured in turn at each client count. This process plays 1, 8, 32 and 64 clients
(one connection each, each sending its next image as soon as the last is answered: a
bare asyncio HTTP/1.1 keep-alive loop, `Connection`, so the client's CPU stays small
beside the server's). Each level is bounded: after a warm-up of two requests per
client, at most `--requests` requests or `--seconds` seconds. The mean batch size comes
from the server's own /metrics, the server's CPU time per request from /proc (a figure
that holds however busy the machine is). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import io
import os
import platform
import re
import signal
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.timing import percentile

MODES = {"batched": ["--max-batch", "32", "--batch-window-ms", "5"],
         "unbatched": ["--max-batch", "1"]}


def start_server(model: str, mode: str) -> tuple[subprocess.Popen, str, str]:
    """A `zoo serve` process for `model`; returns it, its URL and the model's name."""
    process = subprocess.Popen([sys.executable, "-m", "zoo.cli.main", "serve", "--model", model,
                                "--port", "0", *MODES[mode]],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    while not lines or "listening on" not in lines[-1]:
        lines.append(process.stderr.readline())
        if not lines[-1]:
            raise RuntimeError("zoo serve exited:\n" + "".join(lines))
    url = re.search(r"http://\S+", lines[-1]).group(0)
    name = re.search(r"\((\S+?);", lines[-1]).group(1)
    return process, url, name


def example_png(url: str, name: str) -> bytes:
    """A random image of the model's input shape (from its card), as PNG bytes."""
    info = httpx.get(f"{url}/v1/models/{name}").json()["card"]["info"]
    h, w, c = info["input_shape"]
    pixels = np.random.default_rng(0).integers(0, 256, (h, w, c), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if c == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_totals(url: str, name: str) -> tuple[float, float]:
    """(model calls, inputs) so far, from /metrics."""
    samples = {s.name: s.value for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
               for s in family.samples if s.labels.get("model") == name}
    return samples["zoo_batch_size_count"], samples["zoo_batch_size_sum"]


class Connection:
    """One keep-alive HTTP/1.1 connection that posts the same prepared request again and
    again: the load generator must cost far less CPU than the server it measures on a
    2-core machine, and httpx cost 3 to 10 ms of CPU per request here (the server ~3)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes):
        self.reader, self.writer, self.request = reader, writer, request

    @classmethod
    async def open(cls, url: str, name: str, png: bytes) -> Connection:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (f"POST /v1/models/{name}:predict HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: image/png\r\nContent-Length: {len(png)}\r\n\r\n")
        return cls(reader, writer, head.encode() + png)

    async def post(self) -> int:
        """Sends the request; returns the response's status once its body is read."""
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        await self.reader.readexactly(length)
        return int(head.split(b" ", 2)[1])

    def close(self) -> None:
        self.writer.close()


async def load_level(url: str, name: str, png: bytes, clients: int, requests: int,
                     seconds: float, server_pid: int) -> dict:
    """`clients` concurrent clients: requests/s, latency percentiles, errors, CPU."""
    connections = await asyncio.gather(*(Connection.open(url, name, png) for _ in range(clients)))
    for _ in range(2):  # warm-up: connections accepted, caches and thread pools busy
        await asyncio.gather(*(c.post() for c in connections))
    latencies, errors, sent = [], 0, 0
    deadline = time.perf_counter() + seconds

    async def client_loop(connection: Connection) -> None:
        nonlocal errors, sent
        while sent < requests and time.perf_counter() < deadline:
            sent += 1
            t0 = time.perf_counter()
            status = await connection.post()
            latencies.append(time.perf_counter() - t0)
            errors += status != 200

    t0, server0, client0 = time.perf_counter(), cpu_seconds(server_pid), time.process_time()
    await asyncio.gather(*(client_loop(c) for c in connections))
    elapsed = time.perf_counter() - t0
    server_cpu, client_cpu = cpu_seconds(server_pid) - server0, time.process_time() - client0
    for connection in connections:
        connection.close()
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "errors": errors,
            "server_cpu": server_cpu, "client_cpu": client_cpu,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99)}


def run(models: list[str], clients: list[int], requests: int, seconds: float) -> list[dict]:
    """Both servers of a model run side by side and each client count is measured on one,
    then at once on the other: on a shared machine whose load drifts, the pair compares."""
    rows = []
    for model in models:
        servers = {mode: start_server(model, mode) for mode in MODES}
        try:
            for level in clients:
                for mode, (process, url, name) in servers.items():
                    png = example_png(url, name)
                    calls0, inputs0 = batch_totals(url, name)
                    row = asyncio.run(load_level(url, name, png, level, requests, seconds,
                                                 process.pid))
                    calls1, inputs1 = batch_totals(url, name)
                    row |= {"model": name, "mode": mode, "clients": level,
                            "mean_batch": (inputs1 - inputs0) / max(1, calls1 - calls0),
                            "server_cpu_ms": 1000 * row.pop("server_cpu") / row["requests"],
                            "client_cpu_ms": 1000 * row.pop("client_cpu") / row["requests"]}
                    rows.append(row)
                    print(row_line(row), flush=True)
        finally:
            stop([process for process, _, _ in servers.values()])
    return rows


def stop(processes: list[subprocess.Popen], timeout: float = 300) -> None:
    """SIGTERM to every server at once, then a wait (a machine at load 60 once took over
    a minute to let an idle server exit); one still running after `timeout` is killed."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"zoo serve (pid {process.pid}) did not stop in {timeout:g} s; killed",
                  file=sys.stderr)
            process.kill()
            process.wait()


def row_line(row: dict) -> str:
    return (f"| {row['model']} | {row['mode']} | {row['clients']} | {row['rps']:,.0f} | "
            f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['mean_batch']:.1f} | "
            f"{row['server_cpu_ms']:.2f} | {row['client_cpu_ms']:.2f} | {row['requests']} | "
            f"{row['errors']} |")


def ratios(rows: list[dict]) -> list[str]:
    """Batched over unbatched requests/s, per model and client count."""
    by = {(r["model"], r["mode"], r["clients"]): r for r in rows}
    lines = []
    for (m, mode, c), on in by.items():
        off = by.get((m, "unbatched", c))
        if mode == "batched" and off:
            lines.append(f"- {m} at {c} clients: batching gives {on['rps'] / off['rps']:.2f}x the "
                         f"requests/s, p99 {on['p99_ms']:.0f} vs {off['p99_ms']:.0f} ms, "
                         f"{on['server_cpu_ms'] / off['server_cpu_ms']:.2f}x the server CPU per request")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="classification/lenet:mnist-sample,segmentation/unet:scenes")
    parser.add_argument("--clients", default="1,8,32,64", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=2000, help="most requests per level")
    parser.add_argument("--seconds", type=float, default=10.0, help="most seconds per level")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = run(args.models.split(","), [int(c) for c in args.clients.split(",")],
               args.requests, args.seconds)
    print(f"\n- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"- load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"- command: `python -m benchmarks.serve {' '.join(argv or sys.argv[1:])}`".replace(" `", " `", 1))
    print("\n| model | serving | clients | requests/s | p50 ms | p99 ms | mean batch "
          "| server CPU ms/request | client CPU ms/request | requests | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(row_line(r) for r in sorted(rows, key=lambda r: (r["model"], r["mode"], r["clients"]))))
    print("\n" + "\n".join(ratios(rows)))


if __name__ == "__main__":
    main()
