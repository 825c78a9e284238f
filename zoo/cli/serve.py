"""`zoo serve`: models behind an HTTP endpoint with dynamic batching (zoo.serve)."""

from __future__ import annotations

import argparse
import importlib.util

from zoo.cli.common import no_extra
from zoo.errors import ZooError

EXAMPLES = """examples:
  zoo serve --model classification/lenet:mnist-sample
  zoo serve --model digits=classification/lenet:mnist-sample --model runs/detection --port 9000
  zoo serve --model lenet-hlo --max-batch 1          an export; batching off
  curl -X POST --data-binary @digit.png -H 'Content-Type: image/png' \\
       localhost:8080/v1/models/lenet-mnist-sample:predict
docs/serving.md has every endpoint, body format and metric.
"""
EXTRA = ("starlette", "uvicorn", "multipart", "prometheus_client")  # pip install 'zoo[serve]'


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "serve", parents=[common], epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="serve models over HTTP with dynamic batching",
        description="Serve trained models over HTTP: POST /v1/models/NAME:predict, "
                    "GET /v1/models, /health, /metrics. Concurrent requests are batched; "
                    "every batch size is compiled before the server listens.")
    parser.add_argument("--model", action="append", required=True, metavar="[NAME=]SOURCE",
                        help="a hub weight (TASK/MODEL[:TAG]), a workdir or an export "
                             "directory (repeatable); NAME is its URL name (default: the "
                             "source's last part, ':' as '-')")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every "
                             "interface)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free one)")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="most inputs in one model call (1: batching off); batch sizes "
                             "are padded to powers of two up to it (default 32)")
    parser.add_argument("--batch-window-ms", type=float, default=5.0,
                        help="how long a request waits for others to batch with (default 5)")
    parser.add_argument("--compile", action="append", default=[], metavar="OPTION=VALUE",
                        help="also compile every bucket for this value of a compiled option "
                             "(e.g. beam=1; repeatable); a request for a value not compiled "
                             "is refused (400) rather than stalling the model on a compile")
    parser.add_argument("--max-body", type=int, default=10 * 2**20, metavar="BYTES",
                        help="largest request body accepted, else 413 (default 10 MiB)")
    parser.add_argument("--max-inputs", type=int, default=256,
                        help="most inputs or generated images per request (default 256)")
    parser.add_argument("--read-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="a body slower than this is answered 408 (default 30)")
    parser.add_argument("--drain-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="on SIGTERM, how long requests in flight may take to finish "
                             "(default 30)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.set_defaults(handler=_serve)


def _serve(args, rest) -> int:
    no_extra(rest)
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise ZooError(f"zoo serve needs the serve extra ({', '.join(missing)} missing): "
                       f"pip install 'zoo[serve]'")
    malformed = [c for c in args.compile if not c.partition("=")[2]]
    if malformed:
        raise ZooError(f"--compile {malformed[0]}: expected OPTION=VALUE, e.g. beam=1")
    if args.max_batch < 1 or args.batch_window_ms < 0 or args.max_body < 1 or args.max_inputs < 1:
        raise ZooError("--max-batch, --max-body and --max-inputs must be at least 1 and "
                       "--batch-window-ms at least 0")
    from zoo.serve.app import Limits
    from zoo.serve.server import serve

    serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch,
          window_s=args.batch_window_ms / 1000, drain_s=args.drain_timeout,
          limits=Limits(args.max_body, args.max_inputs, args.read_timeout),
          access_log=args.access_log, compile_also=args.compile)
    return 0
