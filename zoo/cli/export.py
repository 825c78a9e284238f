"""`zoo export`: a trained model as StableHLO (jax.export) or ONNX (jax2onnx)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.cli.common import (Parser, add_option_flags, add_pretrained, add_workdir,
                            check_output, options_from_flags, restored_model, workdir_of)
from zoo.config import Range, bounded

EXAMPLES = """examples:
  zoo export classification --pretrained --format stablehlo --out lenet-hlo
  zoo export detection --workdir runs/detection --format onnx --out centernet-onnx
  zoo export ocr --pretrained --format stablehlo --beam 4 --out crnn-hlo
"""


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    export = sub.add_parser("export", parents=[common], add_help=False,
                            help="write a trained model for another runtime (StableHLO, ONNX)",
                            description="Export a trained model: `zoo export TASK --help`.")
    export.add_argument("task", help="task name")
    export.set_defaults(handler=_export)


def task_parser(task_cls) -> argparse.ArgumentParser:
    """`zoo export TASK`'s arguments: source, format, output, compiled options."""
    from zoo.export import RUNTIMES
    from zoo.task import COMPILED

    parser = Parser(
        prog=f"zoo export {task_cls.name}", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the model with its weights for another runtime: stablehlo "
                    "(jax.export of everything predict computes on device; runs with jax "
                    "alone, batch size free where the model allows) or onnx (jax2onnx of "
                    "the network's outputs; pip install 'zoo[onnx]'). export.json and "
                    "README.md beside it say how to feed it.")
    parser.add_argument("--format", required=True, choices=RUNTIMES, dest="runtime")
    parser.add_argument("--out", type=Path, required=True, help="directory to write")
    parser.add_argument("--batch", type=bounded(int, Range(0)), default=0,
                        help="a fixed batch size (default: any size for stablehlo, 1 for onnx)")
    add_option_flags(parser, task_cls.PredictOptions, only=lambda f: f.metadata.get(COMPILED))
    add_workdir(parser)
    add_pretrained(parser, "export published weights instead of a workdir")
    return parser


def _export(args, rest) -> int:
    import os

    from zoo.export import export
    from zoo.predictor import from_restored
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    task_args = task_parser(task_cls).parse_args(rest, namespace=argparse.Namespace(task=args.task))
    options = options_from_flags(task_cls.PredictOptions, task_args)
    check_output(task_args.out, "--out",
                 workdir_of(task_args) if task_args.pretrained is None else None, folder=True)
    predictor = from_restored(restored_model(task_args, "exports"))
    print(f"exporting {predictor.source} as {task_args.runtime}...", file=sys.stderr)
    record = export(predictor, task_args.out, task_args.runtime, options=options,
                    batch=task_args.batch)
    size = os.path.getsize(task_args.out / record["file"])
    batch = "any batch size" if record["batch"] == "any" else f"batch {record['batch']}"
    print(f"wrote {task_args.out / record['file']} ({size:,} bytes, {batch}); inputs "
          + ", ".join(f"{k} {v['dtype']}{v['shape']}" for k, v in record["inputs"].items())
          + f"; see {task_args.out / 'README.md'}")
    return 0
