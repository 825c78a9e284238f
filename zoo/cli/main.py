"""The `zoo` command: parses arguments, dispatches, and turns errors into one line.

Heavy imports (JAX, tasks) happen inside the commands, so `zoo --help` is instant.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from zoo.cli import catalog, commands, compress, data, export, hardware, hub, predict, serve
from zoo.cli.common import Parser
from zoo.errors import ZooError, ZooWarning
from zoo_hardware import allocator

EPILOG = """examples:
  zoo run classification                          LeNet on the embedded MNIST sample
  zoo run classification --model resnet --data folder:./imgs --set optimizer.lr=3e-4
  zoo eval classification --workdir runs/classification
  zoo predict classification digit.png --top-k 3
  zoo compress classification --workdir runs/cls --prune 0.92 --quantize kmeans:5 --finetune-epochs 3
  zoo predict classification digit.png --pretrained   published weights, no training
  zoo hub list                                    every published weight and its card
  zoo run mytask --plugin ./my_task.py            your own task, the same harness
  zoo run classification --data imagenet:/data/imagenet --model resnet --workers 8
  zoo data pack folder:./imgs packs/imgs          decoded examples in ArrayRecord shards
  zoo run classification --mesh data=8 --dtype bfloat16     8 devices, mixed precision
  zoo profile classification --hardware v100,h100,tpu-v5e   FLOPs, bytes, roofline times
  zoo devices                                     backends, devices, memory, processes
  zoo serve --model classification/lenet:mnist-sample   an HTTP endpoint, batched
"""


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="import a Python file that registers tasks (repeatable)")
    common.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    parser = Parser(
        prog="zoo", description="A plugin-based deep-learning task zoo on JAX.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_commands(sub, common)
    predict.add_commands(sub, common)
    export.add_commands(sub, common)
    catalog.add_commands(sub, common)
    hub.add_commands(sub, common)
    compress.add_commands(sub, common)
    data.add_commands(sub, common)
    hardware.add_commands(sub, common)
    serve.add_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    allocator.keep_freed_memory()  # before JAX starts its threads
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    args.argv = argv  # to print the command that resumes an interrupted run
    warnings.showwarning = _show_warning
    try:
        for path in args.plugin:
            from zoo.registry import load_plugin_file

            load_plugin_file(path)
        return args.handler(args, rest) or 0
    except ZooError as e:
        if args.debug:
            raise
        print(f"zoo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Zoo's own warnings as one line; others as Python prints them."""
    if issubclass(category, ZooWarning):
        print(f"zoo: warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


if __name__ == "__main__":
    sys.exit(main())
