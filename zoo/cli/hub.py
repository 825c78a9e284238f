"""`zoo hub list`, `zoo pull` and `zoo publish`: the model hub from the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.cli.common import add_allow_unverified, check_output, console, no_extra
from zoo.errors import ZooError


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    hub = sub.add_parser("hub", help="published weights (ZOO_HUB: which hub)")
    hub_sub = hub.add_subparsers(dest="hub_command", metavar="COMMAND", required=True)
    ls = hub_sub.add_parser("list", parents=[common], help="every published weight with its card")
    ls.add_argument("pattern", nargs="?", default="*",
                    help="wildcard on TASK/MODEL:TAG, e.g. 'classification/*'")
    ls.set_defaults(handler=_list)

    pull = sub.add_parser("pull", parents=[common],
                          help="download and verify weights into the cache",
                          description="Fetch a published weight into the cache ($ZOO_HOME/hub), "
                                      "verified against its card's sha256.")
    pull.add_argument("name", metavar="TASK[/MODEL[:TAG]]", help="e.g. classification/lenet")
    add_allow_unverified(pull)
    pull.set_defaults(handler=_pull)

    publish = sub.add_parser("publish", parents=[common], help="a trained workdir as a hub entry",
                             description="Write a finished run's best weights (safetensors) "
                                         "and its model card into a folder hub, ready to serve "
                                         "from any static host.")
    publish.add_argument("workdir", type=Path, help="a finished run (holds metrics.json)")
    publish.add_argument("--hub", type=Path, required=True, help="the hub folder (created)")
    publish.add_argument("--tag", required=True, help="the weight's tag, e.g. v1 or mnist-sample")
    publish.add_argument("--mirror", action="append", default=[], metavar="BASE_URL",
                         help="another host serving a copy of the hub folder (repeatable)")
    publish.add_argument("--license", default="unspecified", help="license of the weights")
    publish.add_argument("--source", default="", help="how they were made (default: the run)")
    publish.add_argument("--force", action="store_true", help="replace an entry of the same name")
    publish.set_defaults(handler=_publish)

    imp = sub.add_parser(
        "import", parents=[common], help="timm or torchvision ImageNet weights into zoo",
        description="Convert upstream ImageNet weights (never unpickled: timm's safetensors, "
                    "or a torchvision .pth through torch's weights-only loader) into a zoo "
                    "workdir or a hub entry, with their preprocessing and class names.",
        epilog="examples:\n  zoo import timm:resnet50.a1_in1k --workdir runs/r50\n"
               "  zoo import timm:vit_small_patch16_224.augreg_in21k_ft_in1k --dir ./vit "
               "--hub ./my-hub\n  zoo import torchvision:resnet50 --file "
               "resnet50-0676ba61.pth --workdir runs/tv50\n"
               "  zoo import torchvision:mobilenet_v3_large --file "
               "mobilenet_v3_large-5c1a4163.pth --hub ./my-hub\n"
               "architectures: timm's resnet18/34/50/101, vit_small_patch16_224, "
               "vit_base_patch16_224, mobilenetv3_large_100;\ntorchvision's resnet18/34/50/101, "
               "mobilenet_v3_large, vit_b_16",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    imp.add_argument("source", metavar="timm:ARCH.TAG|torchvision:ARCH",
                     help="e.g. timm:resnet50.a1_in1k (from hf://timm/NAME unless --file/--dir)")
    imp.add_argument("--file", type=Path, help="the weights file (offline): model.safetensors "
                                               "or a torchvision .pth")
    imp.add_argument("--dir", type=Path, help="a folder with timm's model.safetensors and "
                                              "config.json (offline)")
    out = imp.add_mutually_exclusive_group(required=True)
    out.add_argument("--workdir", type=Path, help="write a zoo run here (predict, publish)")
    out.add_argument("--hub", type=Path, help="add a converted entry to this folder hub")
    imp.add_argument("--tag", help="the hub entry's tag (default: the timm tag, or torchvision)")
    imp.add_argument("--force", action="store_true", help="replace a hub entry of the same name")
    imp.set_defaults(handler=_import)


def megabytes(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def _list(args, rest) -> int:
    from rich.table import Table

    from zoo.hub import cache, index

    no_extra(rest)
    hub = index.load()
    table = Table("weights", "size", "metrics", "license", "source", "cached",
                  title=f"hub {hub.url}", title_justify="left")
    for card in hub.matching(args.pattern):
        values = ", ".join(f"{k} {v:.4g}" for k, v in card.metrics.get("values", {}).items())
        where = f" ({card.metrics.get('dataset')} {card.metrics.get('split')})" if values else ""
        table.add_row(card.name, megabytes(card.size), values + where, card.license,
                      card.source, "yes" if cache.is_cached(card) else "no")
    console().print(table)
    return 0


def _pull(args, rest) -> int:
    from zoo.hub import cache, index

    no_extra(rest)
    task, _, model_tag = args.name.partition("/")
    model, _, tag = model_tag.partition(":")
    hub = index.load()
    card = hub.find(task, model or None, tag or None)
    path = cache.fetch_card(card, hub.url, allow_unverified=args.allow_unverified)
    check = f"sha256 {card.sha256[:16]}... verified" if card.sha256 else "UNVERIFIED"
    print(f"{card.name}: {path} ({megabytes(card.size)}, {check})")
    return 0


def _import(args, rest) -> int:
    from zoo.hub import importer

    no_extra(rest)
    upstream = importer.read(args.source, file=args.file, directory=args.dir)
    what = (f"{args.source} as {upstream.model} ({len(upstream.classes)} classes, "
            f"{upstream.image_size}px, sha256 {upstream.sha256[:16]}...)")
    if args.workdir is not None:
        _import_workdir(upstream, args.workdir)
        print(f"imported {what} -> {args.workdir}\ntry: zoo predict classification "
              f"photo.jpg --workdir {args.workdir} --top-k 5")
        return 0
    tag = args.tag or args.source.partition(".")[2] or args.source.partition(":")[0]
    card = importer.write_hub_entry(upstream, args.hub, tag, force=args.force)
    print(f"imported {what} -> {args.hub / card.urls[0]}\ntry: ZOO_HUB={args.hub} zoo "
          f"predict classification photo.jpg --pretrained {card.model}:{card.tag}")
    return 0


def _import_workdir(upstream, workdir) -> None:
    """The converted weights as a finished classification run in `workdir`."""
    from zoo.config import from_dict
    from zoo.harness.finished_run import write_finished_run
    from zoo.hub import importer
    from zoo.models.convert import from_torch_layout
    from zoo.registry import get_task

    task_cls = get_task("classification")
    task = task_cls(from_dict(task_cls.Config, importer.task_config(upstream)))
    write_finished_run(workdir, task, importer.data_info(upstream),
                       from_torch_layout(upstream.model, upstream.state),
                       {"dataset": "imagenet-1k", "split": "val", "imported_from": upstream.source})


def _publish(args, rest) -> int:
    from zoo import restore
    from zoo.hub.publish import publish

    no_extra(rest)
    if not args.workdir.is_dir():
        raise ZooError(f"{args.workdir}: no such run directory")
    check_output(args.hub, "--hub", args.workdir, folder=True)
    card = publish(restore.from_workdir(args.workdir), args.hub, args.tag, mirrors=args.mirror,
                   license=args.license, source=args.source, force=args.force)
    values = ", ".join(f"{k}={v:.4f}" for k, v in card.metrics["values"].items())
    print(f"published {card.name} -> {args.hub / card.urls[0]} ({megabytes(card.size)}, "
          f"sha256 {card.sha256[:16]}...; {values} on {card.metrics['dataset']} "
          f"{card.metrics['split']})\nserve {args.hub} from any static host, then "
          f"ZOO_HUB=URL zoo pull {card.name}")
    return 0
