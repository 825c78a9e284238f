"""`zoo run` and `zoo eval`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from zoo.cli.common import (add_config_arguments, add_device, add_pretrained,
                            add_runtime_arguments, add_workdir, build_config, no_extra,
                            restored_model, start_runtime, workdir_of)
from zoo.errors import ZooError


def add_commands(sub, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common], help="train, validate, checkpoint and test a task",
                         description="Train TASK with per-epoch validation, early stopping and "
                                     "checkpoints, then report test metrics. Re-running on the "
                                     "same --workdir resumes where it stopped.")
    run.add_argument("task", help="task name (see `zoo list`)")
    add_config_arguments(run)
    run.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                     help="also checkpoint every STEPS steps mid-epoch "
                          "(train.checkpoint_every_steps; default: at epoch ends)")
    run.add_argument("--on-nan", choices=("raise", "skip"),
                     help="a non-finite loss or update stops the run (raise, the default) or "
                          "is dropped (skip, up to train.max_bad_steps in a row)")
    run.add_argument("--debug-nans", action="store_true",
                     help="find the operation that makes the first NaN (slow: checks every step)")
    run.add_argument("--resume-from-last-good", action="store_true",
                     help="move damaged checkpoints aside and resume from the newest good one")
    run.add_argument("--workers", type=int, metavar="N",
                     help="input worker processes that decode streamed data (train.workers; "
                          "default: one per core but one, at most 8; 0: the main process)")
    run.add_argument("--on-bad-example", choices=("raise", "skip"),
                     help="an unreadable file stops the run naming it (raise, the default) or "
                          "is left out of its batch, counted in the log and run.json (skip)")
    add_pretrained(run, "start from published weights (fine-tune); layers of another "
                         "shape, e.g. a new head, are re-initialised")
    run.add_argument("--pretrained-backbone", metavar="MODEL[:TAG]",
                     help="start a detection or segmentation model's backbone from a published "
                          "classifier's, e.g. resnet50:imagenet (sets backbone.name and the "
                          "input mean/std)")
    add_workdir(run)
    add_device(run)
    add_runtime_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(handler=_run)

    ev = sub.add_parser("eval", parents=[common], help="metrics of a trained workdir",
                        description="Evaluate the best checkpoint of a trained workdir.")
    ev.add_argument("task", help="task name")
    add_workdir(ev)
    add_device(ev)
    add_runtime_arguments(ev)
    ev.add_argument("--split", default="test", choices=("train", "val", "test"))
    ev.add_argument("--json", action="store_true", help="print metrics as JSON")
    add_pretrained(ev, "evaluate published weights on their card's data set instead of "
                        "a workdir, beside the card's metrics")
    ev.add_argument("--data", metavar="SPEC",
                    help="with --pretrained: every example of your copy of the card's data "
                         "set, e.g. ImageNet's validation folder folder:/data/imagenet/val "
                         "(a folder per synset id such as n01440764, or per class name)")
    ev.set_defaults(handler=_eval)


def _run(args, rest) -> int:
    no_extra(rest)
    from zoo.harness.model_setup import ModelSetup
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    start_runtime(args)
    if args.pretrained_backbone is not None:
        if args.pretrained is not None:
            raise ZooError("pass --pretrained (the whole model) or --pretrained-backbone, "
                           "not both")
        config, setup = _backbone_start(task_cls, args)
    elif args.pretrained is None:
        config, setup = build_config(task_cls, args), ModelSetup()
    else:
        from zoo import restore

        source = restore.from_hub(args.task, args.pretrained, model=args.model,
                                  allow_unverified=args.allow_unverified)
        config = build_config(task_cls, args, base=source.task.config)
        setup = source.setup.fine_tuning()
        if not args.quiet:
            print(f"fine-tuning from {source.card.name}", file=sys.stderr)
    import jax

    from zoo.harness.preemption import Preempted
    from zoo.harness.trainer import fit

    jax.config.update("jax_debug_nans", args.debug_nans)
    try:
        fit(task_cls(config), workdir_of(args), device=args.device, mesh=args.mesh,
            quiet=args.quiet, setup=setup, last_good=args.resume_from_last_good)
    except Preempted as e:
        print(f"zoo: {e}; checkpoint saved in {workdir_of(args)}. Resume with: "
              f"{shlex.join(['zoo', *args.argv])}", file=sys.stderr)
    return 0


def _backbone_start(task_cls, args):
    """The config and starting weights of a dense model whose backbone starts from a
    published classifier's: backbone.name and the input mean/std follow the card."""
    import dataclasses

    from zoo.data.images import Preprocess
    from zoo.harness.model_setup import ModelSetup
    from zoo.hub import pretrained
    from zoo_hardware.distributed import primary_first

    config = build_config(task_cls, args)
    if not hasattr(config, "backbone") or not hasattr(config, "preprocess"):
        raise ZooError(f"{args.task} has no backbone section; --pretrained-backbone is for "
                       f"detection and segmentation (classification: --pretrained)")
    hub, card = pretrained.find_backbone(args.pretrained_backbone)
    if config.backbone.name not in ("resnet", card.model):
        raise ZooError(f"--pretrained-backbone {card.model} but backbone.name is "
                       f"{config.backbone.name}; drop one of them")
    source = card.config.get("preprocess", {})
    config = dataclasses.replace(
        config, backbone=dataclasses.replace(config.backbone, name=card.model),
        preprocess=Preprocess(mean=tuple(source.get("mean", ())),
                              std=tuple(source.get("std", ()))))
    with primary_first("download weights"):
        tensors = pretrained.load_weights(hub, card, allow_unverified=args.allow_unverified)
    if not args.quiet:
        print(f"backbone from {card.name}", file=sys.stderr)
    backbone = {k: v for k, v in tensors.items() if k.startswith("backbone/")}
    return config, ModelSetup(weights=backbone).fine_tuning()


def _eval(args, rest) -> int:
    no_extra(rest)
    start_runtime(args)
    if args.data is not None and args.pretrained is None:
        raise ZooError("--data evaluates --pretrained weights on your copy of their data set; "
                       "a workdir is evaluated on the data it was trained on")
    data = None
    if args.pretrained is not None:  # the data first: it may be one zoo cannot download
        from zoo import restore

        data = restore.hub_data(args.task, args.pretrained, args.data)
    model = restored_model(args, "evaluates")
    metrics = model.evaluate(args.split, device=args.device, mesh=args.mesh, data=data)
    claimed = {}
    if model.card is not None:
        if model.card.metrics.get("split") == args.split or args.data is not None:
            claimed = model.card.metrics.get("values", {})  # --data: the user's copy of it
        where = (f"every example of {args.data}" if args.data is not None else
                 f"{model.card.metrics.get('dataset')} {args.split}")
        print(f"{model.card.name} on {where}", file=sys.stderr)
    from zoo_hardware.distributed import is_primary

    if not is_primary():
        return 0
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            line = _metric_lines(f"{args.split}/{key}", value)
            print(line + (f"  (card: {claimed[key]:.4f})" if key in claimed else ""))
    return 0


def _metric_lines(name: str, value) -> str:
    """`name: value`; a table of metrics (per class, per attribute) one line per row."""
    if isinstance(value, float):
        return f"{name}: {value:.4f}"
    if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
        return "\n".join(_metric_lines(f"{name}/{k}", v) for k, v in value.items())
    if isinstance(value, dict):
        return f"{name}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in value.items())
    return f"{name}: {value}"

