"""`zoo data pack` and `zoo data verify`: data sets as ArrayRecord shards (zoo.data.packed)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.cli.common import no_extra
from zoo.errors import ZooError

EXAMPLES = """examples:
  zoo data pack imagenet:/data/imagenet packs/imagenet --set image_size=224 --workers 8
  zoo run classification --data packed:packs/imagenet --model resnet
  zoo data pack coco:ann/instances_train2017.json:train2017 packs/coco --set image_size=512
  zoo data pack voc:VOCdevkit/VOC2012 packs/voc-seg --task segmentation
  zoo data verify packs/imagenet                 re-hash every shard against the manifest
"""


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    data = sub.add_parser("data", parents=[common], help="pack data sets into record shards",
                          description="Data sets as ArrayRecord shards: `zoo data pack` writes "
                                      "any data spec of any task (decoded and resized, as the "
                                      "task trains on it), `packed:DIR` then trains any task "
                                      "on them.", epilog=EXAMPLES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    pack = commands.add_parser("pack", parents=[common], help="write a data spec as shards",
                               description="Write the train, val and test splits of SPEC, as "
                                           "TASK reads them (its config: --set image_size=...), "
                                           "into ArrayRecord shards in OUT with a manifest. "
                                           "Killed, the same command continues where it "
                                           "stopped.", epilog=EXAMPLES,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    pack.add_argument("spec", help="a data spec (see `zoo info TASK`), e.g. folder:./images")
    pack.add_argument("out", type=Path, help="output folder (new or empty, or an unfinished pack)")
    pack.add_argument("--task", help="whose examples to pack (default: the one task whose "
                                     "data sets name SPEC's kind)")
    pack.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      dest="overrides", help="task config overrides that shape the examples "
                                             "(e.g. --set image_size=224)")
    pack.add_argument("--workers", type=int, metavar="N",
                      help="writer processes (default: from the core count; 0: this process)")
    pack.add_argument("--examples-per-shard", type=int, default=4096, metavar="N",
                      help="examples per shard file (default 4096)")
    pack.add_argument("--on-bad-example", choices=("raise", "skip"), default="raise",
                      help="an unreadable example stops the pack naming it (raise, default) "
                           "or is left out and listed in the manifest (skip)")
    pack.set_defaults(handler=_pack)
    verify = commands.add_parser("verify", parents=[common], help="re-hash a pack's shards",
                                 description="Re-hash every shard of a pack against the sha256 "
                                             "in its manifest.")
    verify.add_argument("out", type=Path, help="a folder written by `zoo data pack`")
    verify.set_defaults(handler=_verify)


def task_for(spec: str, name: str | None) -> str:
    """The task `--task` names, else the one task whose data sets have SPEC's kind."""
    from zoo.registry import get_task, task_names

    if name:
        return name
    kind = spec.split(":", 1)[0]
    owners = [t for t in task_names() if any(d.split(":", 1)[0] == kind
                                             for d in get_task(t).datasets)]
    if len(owners) != 1:
        found = f"tasks {', '.join(owners)} read" if owners else "no task reads"
        raise ZooError(f"{found} {kind!r} data sets; choose with --task")
    return owners[0]


def _pack(args, rest) -> int:
    no_extra(rest)
    from zoo.config import apply_overrides
    from zoo.data import packed
    from zoo.data.pipeline import default_workers
    from zoo.registry import get_task

    task_cls = get_task(task_for(args.spec, args.task))
    config = apply_overrides(task_cls.Config(), [f"data={args.spec}", *args.overrides])
    workers = default_workers() if args.workers is None else args.workers
    if args.examples_per_shard < 1:
        raise ZooError("--examples-per-shard must be at least 1")
    print(f"packing {args.spec} for {task_cls.name} into {args.out} ({workers} worker(s))",
          file=sys.stderr)
    manifest = packed.pack(task_cls(config), args.out, workers_count=workers,
                           examples_per_shard=args.examples_per_shard,
                           on_bad=args.on_bad_example, log=lambda line: print(line, file=sys.stderr))
    counts = ", ".join(f"{s['count']:,} {name}" for name, s in manifest["splits"].items())
    left = manifest["bad_examples"]["count"]
    print(f"{args.out}: {counts} examples; train with --data {packed.PREFIX}{args.out}"
          + (f" ({left} unreadable example(s) left out, listed in the manifest)" if left else ""))
    return 0


def _verify(args, rest) -> int:
    no_extra(rest)
    from zoo.data import packed

    damaged = packed.verify(args.out)
    if damaged:
        raise ZooError(f"{args.out}: {len(damaged)} damaged shard(s): {', '.join(damaged[:5])}; "
                       f"delete them and their done/ records and rerun `zoo data pack`")
    print(f"{args.out}: every shard matches its sha256")
    return 0
