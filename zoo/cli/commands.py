"""`zoo run`, `zoo eval` and `zoo predict`."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from zoo.cli.common import (Parser, add_config_arguments, check_output, add_device, add_pretrained,
                            add_runtime_arguments, add_workdir, build_config, no_extra,
                            restored_model, start_runtime, workdir_of)


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
    add_pretrained(run, "start from published weights (fine-tune); layers of another "
                         "shape, e.g. a new head, are re-initialised")
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
    ev.set_defaults(handler=_eval)

    predict = sub.add_parser("predict", parents=[common], add_help=False,
                             help="predict with a trained model (task-specific arguments)",
                             description="Run a trained model on your inputs. "
                                         "`zoo predict TASK --help` lists TASK's arguments.")
    predict.add_argument("task", help="task name")
    predict.set_defaults(handler=_predict)


def _run(args, rest) -> int:
    no_extra(rest)
    from zoo.harness.model_setup import ModelSetup
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    start_runtime(args)
    if args.pretrained is None:
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


def _eval(args, rest) -> int:
    no_extra(rest)
    start_runtime(args)
    model = restored_model(args, "evaluates")
    metrics = model.evaluate(args.split, device=args.device, mesh=args.mesh)
    claimed = {}
    if model.card is not None:
        if model.card.metrics.get("split") == args.split:
            claimed = model.card.metrics.get("values", {})
        print(f"{model.card.name} on {model.card.metrics.get('dataset')} {args.split}",
              file=sys.stderr)
    from zoo_hardware.distributed import is_primary

    if not is_primary():
        return 0
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        for key, value in metrics.items():
            line = (f"{args.split}/{key}: {value:.4f}" if isinstance(value, float)
                    else f"{args.split}/{key}: {value}")
            print(line + (f"  (card: {claimed[key]:.4f})" if key in claimed else ""))
    return 0


def _predict(args, rest) -> int:
    from zoo.registry import get_task

    task_cls = get_task(args.task)
    parser = Parser(prog=f"zoo predict {args.task}",
                                     description=f"Predict with a trained {args.task} model.")
    task_cls.add_predict_arguments(parser)
    add_workdir(parser)
    add_pretrained(parser, "predict with published weights instead of a workdir")
    task_args = parser.parse_args(rest, namespace=argparse.Namespace(task=args.task))
    for name, value in vars(task_args).items():  # --out, --mask-out, ...: never into the model
        if name == "out" or name.endswith("_out"):
            check_output(value, f"--{name.replace('_', '-')}",
                         workdir_of(task_args) if task_args.pretrained is None else None)
    model = restored_model(task_args, "predicts with")
    print(model.task.predict(model.inference_model(), model.info, task_args))
    return 0
