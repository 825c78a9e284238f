"""`zoo predict`: a task's typed results as text, JSON or pictures.

The command knows no task: its flags come from the task's `PredictOptions` dataclass
(each field a type-checked flag, its `# comment` the help) and from the files its
`Result` type can write (`--out`, `--mask-out`...); the results format themselves
(`zoo.predictions`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from zoo.cli.common import (Parser, add_option_flags, add_pretrained, add_workdir,
                            check_output, flag, options_from_flags, restored_model, workdir_of)


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    predict = sub.add_parser("predict", parents=[common], add_help=False,
                             help="predict with a trained model (task-specific arguments)",
                             description="Run a trained model on your inputs. "
                                         "`zoo predict TASK --help` lists TASK's arguments.")
    predict.add_argument("task", help="task name")
    predict.set_defaults(handler=_predict)


def task_parser(task_cls) -> argparse.ArgumentParser:
    """`zoo predict TASK`'s arguments: inputs, the task's options, its result files."""
    parser = Parser(prog=f"zoo predict {task_cls.name}",
                    description=f"Predict with a trained {task_cls.name} model.")
    if task_cls.inputs:
        parser.add_argument("inputs", nargs="+", metavar=task_cls.inputs,
                            help=f"{task_cls.inputs.lower().replace('_', ' ')}s to predict on")
    add_option_flags(parser, task_cls.PredictOptions)
    files = task_cls.Result.files if task_cls.Result is not None else {}
    for name, file in files.items():
        default = f" (default {file.default})" if file.default else ""
        parser.add_argument(flag(name), dest=f"file_{name}", metavar="PATH",
                            default=file.default, help=file.help + default)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    add_workdir(parser)
    add_pretrained(parser, "predict with published weights instead of a workdir")
    return parser


def _predict(args, rest) -> int:
    from zoo.predictor import from_restored
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    task_args = task_parser(task_cls).parse_args(rest, namespace=argparse.Namespace(task=args.task))
    options = options_from_flags(task_cls.PredictOptions, task_args)
    source = workdir_of(task_args) if task_args.pretrained is None else None
    for name in (task_cls.Result.files if task_cls.Result is not None else {}):
        check_output(getattr(task_args, f"file_{name}"), flag(name), source)  # never into the model
    predictor = from_restored(restored_model(task_args, "predicts with"))
    inputs = list(task_args.inputs) if task_cls.inputs else []
    results = predictor.predict(inputs, options)
    print(_format(results, inputs, task_args))
    return 0


def _format(results: list, inputs: list, args: argparse.Namespace) -> str:
    """Writes the files asked for, then the results as lines (or JSON)."""
    from zoo.data.images import as_image

    if not results:
        return ""
    result_type = type(results[0])
    sources = [str(x) for x in inputs] or [None] * len(results)
    wanted = {name: getattr(args, f"file_{name}") for name in result_type.files}
    wanted = {name: out for name, out in wanted.items() if out}
    images = [as_image(x) for x in inputs] if wanted and inputs else [None] * len(results)
    written = {name: result_type.write(name, results, sources, images, Path(out))
               for name, out in wanted.items()}
    if not args.json:
        return "\n".join(result_type.report(results, sources, written))
    return json.dumps(result_type.json_report(results, sources, written), indent=2)
