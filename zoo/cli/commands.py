"""`zoo run`, `zoo eval` and `zoo predict`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from zoo.cli.hub import add_allow_unverified
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
    _add_pretrained(run, "start from published weights (fine-tune); layers of another "
                         "shape, e.g. a new head, are re-initialised")
    _add_workdir(run)
    _add_device(run)
    add_runtime_arguments(run)
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(handler=_run)

    ev = sub.add_parser("eval", parents=[common], help="metrics of a trained workdir",
                        description="Evaluate the best checkpoint of a trained workdir.")
    ev.add_argument("task", help="task name")
    _add_workdir(ev)
    _add_device(ev)
    add_runtime_arguments(ev)
    ev.add_argument("--split", default="test", choices=("train", "val", "test"))
    ev.add_argument("--json", action="store_true", help="print metrics as JSON")
    _add_pretrained(ev, "evaluate published weights on their card's data set instead of "
                        "a workdir, beside the card's metrics")
    ev.set_defaults(handler=_eval)

    predict = sub.add_parser("predict", parents=[common], add_help=False,
                             help="predict with a trained model (task-specific arguments)",
                             description="Run a trained model on your inputs. "
                                         "`zoo predict TASK --help` lists TASK's arguments.")
    predict.add_argument("task", help="task name")
    predict.set_defaults(handler=_predict)


def _add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path,
                        help="run directory (default: runs/TASK); holds checkpoints and logs")


def _add_pretrained(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--pretrained", nargs="?", const="", metavar="MODEL[:TAG]",
                        help=help + " (default: the task's first entry in `zoo hub list`)")
    add_allow_unverified(parser)


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu", "tpu"),
                        help="accelerator kind; its devices form the mesh (see --mesh)")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose a task's config (shared by `run` and `profile`)."""
    parser.add_argument("--model", help="model name (see `zoo info TASK`)")
    parser.add_argument("--data", help="data set spec (see `zoo info TASK`)")
    parser.add_argument("--epochs", type=int, help="shorthand for --set train.epochs=N")
    parser.add_argument("--batch-size", type=int, help="global batch size (train.batch_size)")
    parser.add_argument("--lr", type=float, help="learning rate (optimizer.lr)")
    parser.add_argument("--seed", type=int, help="seed for init, data order and augmentation")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                        help="compute dtype (train.dtype); parameters stay float32, "
                             "float16 adds loss scaling")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="overrides", help="override any config field, type-checked "
                                               "(repeatable), e.g. --set optimizer.name=adamw")
    parser.add_argument("--smoke", action="store_true", help="the task's tiny config (seconds)")


def add_runtime_arguments(parser: argparse.ArgumentParser, *, mesh: bool = True) -> None:
    """Placement and multi-process options (`run`, `eval`, `devices`)."""
    if mesh:
        parser.add_argument("--mesh", metavar="data=N[,model=M]",
                            help="device mesh: batches split over `data`, large parameters "
                                 "over `model` (default: every device on data)")
    parser.add_argument("--num-processes", type=int, metavar="N",
                        help="processes (hosts) in a multi-process run; start one per host")
    parser.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1")
    parser.add_argument("--coordinator", metavar="HOST:PORT",
                        help="process 0's address, the same in every process")


def start_runtime(args) -> None:
    """Joins a multi-process run if asked, and turns on the persistent compilation cache.

    Runs before anything touches a JAX device.
    """
    from zoo.paths import cache_dir
    from zoo_hardware import compilation, distributed

    distributed.initialize(args.num_processes, args.process_id, args.coordinator)
    compilation.enable_persistent_cache(cache_dir("jax-cache"))


def _no_extra(rest: list[str]) -> None:
    if rest:
        raise ZooError(f"unrecognized arguments: {' '.join(rest)} (see --help)")


def _workdir(args) -> Path:
    return args.workdir or Path("runs") / args.task


def build_config(task_cls, args, base=None) -> object:
    """The task's config with the command line's shorthands and --set overrides applied.

    Args:
      base: the config to start from instead of the task's default (e.g. a pretrained
        weight's); `--smoke` then only shrinks its `train` section.
    """
    import dataclasses

    from zoo.config import apply_overrides

    if base is None:
        config = task_cls.Config.smoke() if args.smoke else task_cls.Config()
    elif args.smoke:
        config = dataclasses.replace(base, train=task_cls.Config.smoke().train)
    else:
        config = base
    shorthands = {"model": args.model, "data": args.data, "train.epochs": args.epochs,
                  "train.batch_size": args.batch_size, "optimizer.lr": args.lr,
                  "train.seed": args.seed, "train.dtype": args.dtype,
                  "train.checkpoint_every_steps": getattr(args, "checkpoint_every", None),
                  "train.on_nan": getattr(args, "on_nan", None)}
    overrides = [f"{k}={v}" for k, v in shorthands.items() if v is not None]
    config = apply_overrides(config, overrides + args.overrides)
    if task_cls.models and config.model not in task_cls.models:
        from zoo.errors import unknown

        raise unknown(f"model for {task_cls.name}:", config.model, task_cls.models)
    return config


def _run(args, rest) -> int:
    _no_extra(rest)
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    start_runtime(args)
    if args.pretrained is None:
        config, init_params = build_config(task_cls, args), None
    else:
        from zoo.hub import pretrained
        from zoo_hardware.distributed import primary_first

        hub, card = pretrained.find(args.task, args.pretrained, model=args.model)
        config = build_config(task_cls, args, base=pretrained.task_config(task_cls, card))
        with primary_first("download weights"):
            init_params = pretrained.load_weights(hub, card,
                                                  allow_unverified=args.allow_unverified)
        if not args.quiet:
            print(f"fine-tuning from {card.name}", file=sys.stderr)
    import jax

    from zoo.harness.preemption import Preempted
    from zoo.harness.trainer import fit

    jax.config.update("jax_debug_nans", args.debug_nans)
    try:
        fit(task_cls(config), _workdir(args), device=args.device, mesh=args.mesh,
            quiet=args.quiet, init_params=init_params, last_good=args.resume_from_last_good)
    except Preempted as e:
        print(f"zoo: {e}; checkpoint saved in {_workdir(args)}. Resume with: "
              f"{shlex.join(['zoo', *args.argv])}", file=sys.stderr)
    return 0


def _eval(args, rest) -> int:
    _no_extra(rest)
    from zoo.harness.inference import evaluate_workdir
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    start_runtime(args)
    claimed = {}
    if args.pretrained is None:
        metrics = evaluate_workdir(_workdir(args), args.task, split=args.split,
                                   device=args.device, mesh=args.mesh)
    else:
        from zoo.hub import pretrained

        if args.workdir is not None:
            raise ZooError("--pretrained evaluates published weights; drop --workdir")
        hub, card = pretrained.find(args.task, args.pretrained)
        metrics = pretrained.evaluate(task_cls, hub, card, split=args.split, device=args.device,
                                      allow_unverified=args.allow_unverified)
        if card.metrics.get("split") == args.split:
            claimed = card.metrics.get("values", {})
        print(f"{card.name} on {card.metrics.get('dataset')} {args.split}", file=sys.stderr)
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


def _predict(args, rest) -> int:
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    parser = argparse.ArgumentParser(prog=f"zoo predict {args.task}",
                                     description=f"Predict with a trained {args.task} model.")
    task_cls.add_predict_arguments(parser)
    _add_workdir(parser)
    _add_pretrained(parser, "predict with published weights instead of a workdir")
    task_args = parser.parse_args(rest)
    args.workdir = task_args.workdir
    if task_args.pretrained is None:
        from zoo.harness.inference import load_model

        task, model, info = load_model(_workdir(args), args.task)
    else:
        from zoo.hub import pretrained

        if args.workdir is not None:
            raise ZooError("--pretrained predicts with published weights; drop --workdir")
        hub, card = pretrained.find(args.task, task_args.pretrained)
        task, model, info = pretrained.load_model(task_cls, hub, card,
                                                  allow_unverified=task_args.allow_unverified)
    print(task.predict(model, info, task_args))
    return 0


__all__ = ["add_commands", "add_config_arguments", "add_runtime_arguments", "build_config",
           "start_runtime"]
