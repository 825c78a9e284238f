"""What every `zoo` command shares: the console, common options, config and model sources.

The command modules import only this one (and `main` imports them), so the CLI has no
import cycles. Heavy imports (JAX, tasks) stay inside functions: `zoo --help` is instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from zoo.errors import ZooError, unknown


class Parser(argparse.ArgumentParser):
    """argparse with zoo's error convention: one line on stderr, exit code 2
    (argparse's own prints the usage first; `--help` still shows it)."""

    def error(self, message: str):
        self.exit(2, f"zoo: error: {self.prog}: {message} (see --help)\n")


def console() -> Console:
    """A rich console; wide when piped, so names are never cut in logs or tests."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def no_extra(rest: list[str]) -> None:
    """Refuses arguments the command did not parse."""
    if rest:
        raise ZooError(f"unrecognized arguments: {' '.join(rest)} (see --help)")


def add_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path,
                        help="run directory (default: runs/TASK); holds checkpoints and logs")


def workdir_of(args: argparse.Namespace) -> Path:
    return args.workdir or Path("runs") / args.task


def check_output(path: Path | str | None, option: str, *sources: Path | str | None,
                 folder: bool = False) -> None:
    """Refuses an output path that would land inside an input: inside (or at) a source
    workdir or checkpoint folder, or below an existing file; with `folder`, also an
    existing file where the output folder goes.

    Raises:
      ZooError: naming the option, the path and what it is inside of.
    """
    if path is None:
        return
    out = Path(path).expanduser().absolute()
    if folder and out.exists() and not out.is_dir():
        raise ZooError(f"{option} {path} is a file, not a folder; choose another path")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ZooError(f"{option} {path}: {parent} is a file, not a folder; "
                               f"choose another path")
            break
    for source in filter(None, sources):
        source = Path(source).expanduser().absolute()
        if out == source or source in out.parents:
            raise ZooError(f"{option} {path} is inside the source {source}, which it "
                           f"would overwrite; choose a path outside it")


def add_allow_unverified(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-unverified", action="store_true",
                        help="accept hub entries without a sha256 (not recommended)")


def add_pretrained(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--pretrained", nargs="?", const="", metavar="MODEL[:TAG]",
                        help=help + " (default: the task's first entry in `zoo hub list`; "
                                    "a name: --pretrained=MODEL[:TAG])")
    add_allow_unverified(parser)


def unswallow_pretrained(argv: list[str]) -> list[str]:
    """`--pretrained PATH ...` as `--pretrained= PATH ...`: a bare `--pretrained` before
    the inputs would otherwise take the first input file as the weight's name."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--pretrained" and Path(out[i + 1]).expanduser().exists():
            out[i] = "--pretrained="
    return out


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu", "tpu"),
                        help="accelerator kind; its devices form the mesh (see --mesh)")


def restored_model(args: argparse.Namespace, verb: str):
    """The model `--pretrained` or `--workdir` names (a `zoo.restore.Restored`).

    Args:
      verb: what the command does with published weights, for the error when both
        options are given ("evaluates", "predicts with", ...).
    """
    from zoo import restore
    from zoo.registry import get_task

    get_task(args.task)  # an unknown name: one line with the closest names
    if args.pretrained is None:
        return restore.from_workdir(workdir_of(args), args.task)
    if args.workdir is not None:
        raise ZooError(f"--pretrained {verb} published weights; drop --workdir")
    return restore.from_hub(args.task, args.pretrained, allow_unverified=args.allow_unverified)


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
    parser.add_argument("--freeze", choices=("backbone",),
                        help="train only the head (optimizer.backbone_lr_scale=0; a lower "
                             "backbone rate: --set optimizer.backbone_lr_scale=0.1)")
    parser.add_argument("--smoke", action="store_true", help="the task's tiny config (seconds)")


def build_config(task_cls, args: argparse.Namespace, base=None) -> object:
    """The task's config with the command line's shorthands and --set overrides applied.

    Args:
      base: the config to start from instead of the task's default (e.g. a pretrained
        weight's); `--smoke` then only shrinks its `train` section.
    """
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
                  "train.on_nan": getattr(args, "on_nan", None),
                  "train.workers": getattr(args, "workers", None),
                  "train.on_bad_example": getattr(args, "on_bad_example", None),
                  "optimizer.backbone_lr_scale": 0 if getattr(args, "freeze", None) else None}
    overrides = [f"{k}={v}" for k, v in shorthands.items() if v is not None] + args.overrides
    config = apply_overrides(config, overrides)
    if base is None and not args.smoke:  # the chosen model's own defaults, then the overrides
        config = apply_overrides(task_cls.Config.for_model(config.model), overrides)
    if task_cls.models and config.model not in task_cls.models:
        raise unknown(f"model for {task_cls.name}:", config.model, task_cls.models)
    return config


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


def start_runtime(args: argparse.Namespace) -> None:
    """Joins a multi-process run if asked, and turns on the persistent compilation cache.

    Runs before anything touches a JAX device.
    """
    from zoo.paths import cache_dir
    from zoo_hardware import compilation, distributed

    distributed.initialize(args.num_processes, args.process_id, args.coordinator)
    compilation.enable_persistent_cache(cache_dir("jax-cache"))


def flag(name: str) -> str:
    """The command-line flag of a dataclass field: `top_k` is `--top-k`."""
    return "--" + name.replace("_", "-")


def add_option_flags(parser: argparse.ArgumentParser, options_cls: type, *,
                     only: Callable[[dataclasses.Field], bool] = lambda field: True) -> None:
    """A flag for each field of a task's `PredictOptions` (`only` those it selects),
    with its `# comment`, type and default as help; values are checked by
    `options_from_flags`."""
    from zoo.config import fields_table

    chosen = {f.name for f in dataclasses.fields(options_cls) if only(f)}
    for key, kind, default, doc in fields_table(options_cls()):
        if key in chosen and kind == "bool" and default == "false":  # a switch: `--sort`
            parser.add_argument(flag(key), dest=f"option_{key}", action="store_const",
                                const="true", help=doc)
        elif key in chosen:
            parser.add_argument(flag(key), dest=f"option_{key}", metavar=kind.split()[0].upper(),
                                help=f"{doc} ({kind}, default {default})")


def options_from_flags(options_cls: type, args: argparse.Namespace):
    """The task's options with the flags given, type- and range-checked."""
    from zoo.config import replace_fields

    given = {f.name: getattr(args, f"option_{f.name}", None) for f in dataclasses.fields(options_cls)}
    return replace_fields(options_cls(), {k: v for k, v in given.items() if v is not None},
                          command_line=True)
