"""`zoo list` and `zoo info`: what tasks, models, data sets and config fields exist."""

from __future__ import annotations

import fnmatch
import json

from rich.table import Table
from rich.text import Text

from zoo.cli.common import console, no_extra


def add_commands(sub, common) -> None:
    ls = sub.add_parser("list", parents=[common], help="tasks with their models and data sets")
    ls.add_argument("pattern", nargs="?", default="*", help="wildcard filter on task names")
    ls.add_argument("--json", action="store_true",
                    help="print a JSON list of tasks (name, models, datasets, metric, ...)")
    ls.set_defaults(handler=_list)
    info = sub.add_parser("info", parents=[common], help="a task's config fields, data sets, metrics")
    info.add_argument("task")
    info.set_defaults(handler=_info)


def _list(args, rest) -> int:
    from zoo.errors import ZooError
    from zoo.registry import get_task, task_names

    no_extra(rest)
    table = Table("task", "models", "data sets", "metric", "description")
    rows = []
    for name in task_names():
        if not fnmatch.fnmatch(name, args.pattern):
            continue
        try:
            cls = get_task(name)
        except ZooError as e:  # one broken plugin: its row says why, the others still list
            rows.append({"task": name, "error": str(e)})
            table.add_row(name, "-", "-", "-", Text(f"broken: {e}", style="red"))
            continue
        rows.append({"task": name, "models": list(cls.models), "datasets": dict(cls.datasets),
                     "metric": cls.metric, "metric_mode": cls.metric_mode,
                     "description": cls.description})
        table.add_row(name, ", ".join(cls.models), Text(", ".join(cls.datasets)),
                      f"{cls.metric} ({cls.metric_mode})", Text(cls.description))
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        console().print(table)
    return 0


def _info(args, rest) -> int:
    from zoo.config import fields_table
    from zoo.registry import get_task

    no_extra(rest)
    cls = get_task(args.task)
    out = console()
    out.print(f"[bold]{cls.name}[/bold]: {cls.description}")
    out.print(Text(f"models: {_models(cls)}"))
    out.print(f"primary metric: {cls.metric} ({cls.metric_mode}); early stopping and the "
                  f"best checkpoint follow it")
    datasets = Table("data set (--data)", "description")
    for spec, text in cls.datasets.items():
        datasets.add_row(Text(spec), Text(text))  # literal: 'zoo[hf]' is no markup tag
    out.print(datasets)
    fields = Table("config key (--set KEY=VALUE)", "type", "default", "doc")
    for row in fields_table(cls.Config()):
        fields.add_row(*map(Text, row))
    out.print(fields)
    return 0


def _models(cls) -> str:
    """The task's models, each with the defaults it sets apart from the task's own
    (`Config.for_model`): `dcgan (train.epochs=60), cdcgan`."""
    from zoo.config import fields_table

    default = {key: value for key, _, value, _ in fields_table(cls.Config())}
    labels = []
    for model in cls.models:
        own = [f"{key}={value}" for key, _, value, _ in fields_table(cls.Config.for_model(model))
               if key != "model" and value != default[key]]
        labels.append(f"{model} ({', '.join(own)})" if own else model)
    return ", ".join(labels) or "-"
